using System.CommandLine;

namespace Diffusion.Cli;

internal static class UnetCommand
{
    public static Command Create() => new("unet", "Not implemented yet.");
}
