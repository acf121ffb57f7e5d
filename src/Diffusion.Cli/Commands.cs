using System.CommandLine;

namespace Diffusion.Cli;

/// <summary>The <c>diffuse</c> command tree, built in one place so tests can walk every option of every command.</summary>
internal static class Commands
{
    public static RootCommand Root() => new("diffuse: a DDPM U-Net image generator with hand-written CPU and GPU kernels.\n\n" +
        "Start with 'diffuse generate' (16 clothes from the embedded model); 'diffuse generate --help' shows examples.")
    {
        GenerateCommand.Create(),
        UnetCommand.Create(),
        InfoCommand.Create(),
        BenchCommand.Create(),
        KernelsCommand.Create(),
    };

    /// <summary>
    /// The parse errors as one line, or null when there are none. Every option's parser writes its own message
    /// (CliOptions); System.CommandLine's remaining ones (an unknown option, a missing value) name no types.
    /// </summary>
    public static string? ErrorLine(ParseResult parsed)
    {
        if (parsed.Errors.Count == 0) return null;
        var command = parsed.CommandResult.Command;
        string help = command is RootCommand ? "diffuse --help" : $"diffuse {command.Name} --help";
        return $"diffuse: {string.Join("; ", parsed.Errors.Select(e => e.Message.TrimEnd('.')).Distinct())} (see '{help}')";
    }
}
