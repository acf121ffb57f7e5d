using System.CommandLine;

namespace Diffusion.Cli;

internal static class InfoCommand
{
    public static Command Create() => new("info", "Not implemented yet.");
}
