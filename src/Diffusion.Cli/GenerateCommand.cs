using System.CommandLine;

namespace Diffusion.Cli;

internal static class GenerateCommand
{
    public static Command Create() => new("generate", "Not implemented yet.");
}
