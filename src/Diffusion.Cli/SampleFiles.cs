using Diffusion.Kernels;
using Diffusion.Kernels.IO;

namespace Diffusion.Cli;

/// <summary>The sample tensors users hand in (<c>unet --input</c>, <c>generate --noise</c>): read and checked once, alike.</summary>
internal static class SampleFiles
{
    /// <summary>The tensor 'sample' (or the file's only tensor), of shape (B, C, H, W) with no empty dimension.</summary>
    public static HostTensor Read(string path)
    {
        using var file = SafetensorsFile.Open(path);
        string name = file.Contains("sample") ? "sample"
            : file.Tensors.Count == 1 ? file.Tensors[0].Name
            : throw new SafetensorsFormatException(path, $"expected a tensor named 'sample' or a single tensor, found {file.Tensors.Count}");
        var info = file.Get(name);
        if (info.Shape.Length != 4)
            throw new SafetensorsFormatException(path, $"tensor '{Shorten(name)}' must have shape (B, C, H, W), got {info.ShapeText}");
        if (info.Shape.Contains(0))
            throw new SafetensorsFormatException(path, $"tensor '{Shorten(name)}' of shape {info.ShapeText} is empty; every dimension, the batch too, must be at least 1");
        return file.ReadTensor(name);
    }

    /// <summary>Tensor names come from the file and may be of any length.</summary>
    private static string Shorten(string name) => name.Length <= 200 ? name : name[..200] + "…";
}
