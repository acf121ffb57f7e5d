using System.CommandLine;
using Diffusion.Kernels.Backends;

namespace Diffusion.Cli;

/// <summary>Options shared by several commands, defined once so they read and behave the same everywhere.</summary>
internal static class CliOptions
{
    public static Option<DeviceKind> Device() => new("--device")
    {
        Description = "where to run: cpu, cuda, emulated (the GPU kernels on ILGPU's CPU accelerator: exact but very slow, for checking and teaching), or auto (CUDA when a GPU is usable, else CPU)",
        DefaultValueFactory = _ => DeviceKind.Auto,
        CustomParser = result =>
        {
            string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            // Names only: Enum.TryParse would also take numbers, including ones no DeviceKind has.
            DeviceKind? kind = text.ToLowerInvariant() switch
            {
                "cpu" => DeviceKind.Cpu,
                "cuda" => DeviceKind.Cuda,
                "emulated" => DeviceKind.Emulated,
                "auto" => DeviceKind.Auto,
                _ => null,
            };
            if (kind is { } parsed) return parsed;
            result.AddError($"--device: '{text}' is not one of cpu, cuda, emulated, auto");
            return DeviceKind.Auto;
        },
    };

    public static Option<bool> Force() => new("--force") { Description = "overwrite output files that already exist" };

    public static Option<bool> Verbose() => new("--verbose") { Description = "print stack traces with errors" };

    /// <summary>Creates the backend and says on stderr which one was chosen, so timings are never ambiguous.</summary>
    public static IBackend CreateBackend(DeviceKind kind)
    {
        var backend = BackendFactory.Create(kind, out string choice);
        Console.Error.WriteLine($"device: {choice}");
        return backend;
    }
}
