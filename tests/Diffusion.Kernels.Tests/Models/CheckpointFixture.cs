using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Tests.Models;

/// <summary>Random weights shaped for a config, and diffusers folders holding them.</summary>
internal static class CheckpointFixture
{
    public static Dictionary<string, HostTensor> RandomWeights(UNet2DConfig config, int seed)
    {
        var random = new Random(seed);
        return UNet2DLayout.ExpectedTensors(config).ToDictionary(t => t.Name, t =>
        {
            var data = new float[HostTensor.Count(t.Shape)];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
            return new HostTensor(t.Shape, data);
        });
    }

    /// <summary>Writes config.json and the weights into <paramref name="directory"/> (created if needed).</summary>
    public static void WriteUNetFolder(string directory, string configJson, IEnumerable<KeyValuePair<string, HostTensor>> weights,
        SafetensorsDType dtype = SafetensorsDType.F32)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, ModelFolder.ConfigFileName), configJson);
        SafetensorsWriter.Write(Path.Combine(directory, ModelFolder.WeightsFileName), weights, null, dtype);
    }
}
