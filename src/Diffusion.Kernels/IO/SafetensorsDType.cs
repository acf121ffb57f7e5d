namespace Diffusion.Kernels.IO;

/// <summary>Element types of the safetensors format, spelled as they appear in a file's header.</summary>
public enum SafetensorsDType
{
    BOOL,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    BF16,
    F32,
    F64,
}

public static class SafetensorsDTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8 => 1,
        SafetensorsDType.I16 or SafetensorsDType.U16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.I64 or SafetensorsDType.U64 or SafetensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a safetensors dtype"),
    };

    public static bool IsFloatingPoint(this SafetensorsDType dtype) =>
        dtype is SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F32 or SafetensorsDType.F64;

    /// <summary>Parses a header dtype name; exact spelling only, so "f32" or "3" are not accepted.</summary>
    internal static bool TryParse(string name, out SafetensorsDType dtype)
    {
        foreach (var candidate in Enum.GetValues<SafetensorsDType>())
        {
            if (string.Equals(candidate.ToString(), name, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }
        dtype = default;
        return false;
    }
}
