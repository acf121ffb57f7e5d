using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.IO;

namespace Diffusion.Cli;

/// <summary>
/// Options shared by several commands, and the parsers every option goes through. Each parser checks the whole
/// contract of its value (form and range), so a bad value is a parse error — one line naming the option, the value
/// and what is accepted, before any file is read or device opened — and never System.CommandLine's default
/// message, which names a .NET type. Help names the accepted values with the same lists the parsers use.
/// </summary>
internal static class CliOptions
{
    public static Option<DeviceKind?> Device() => Choice("--device",
        "where to run; emulated runs the GPU kernels on ILGPU's CPU accelerator (exact but very slow, for checking " +
        "and teaching); auto takes CUDA when a GPU is usable, else the CPU (default: auto)",
        ("cpu", DeviceKind.Cpu), ("cuda", DeviceKind.Cuda), ("emulated", DeviceKind.Emulated), ("auto", DeviceKind.Auto));

    public static Option<bool> Force() => Flag("--force", "overwrite output files that already exist");

    public static Option<bool> Verbose(string description = "print details: why a device was chosen, stack traces with errors") =>
        Flag("--verbose", description);

    /// <summary>An on/off switch that takes no value, so "--force yes" is an unknown argument, not a bool to parse.</summary>
    public static Option<bool> Flag(string name, string description) =>
        new(name) { Description = description, Arity = ArgumentArity.Zero };

    /// <summary>One of a fixed list of names, matched exactly; help shows the list as the value's name.</summary>
    public static Option<T?> Choice<T>(string name, string description, params (string Name, T Value)[] choices) where T : struct
    {
        string list = string.Join("|", choices.Select(c => c.Name));
        return new Option<T?>(name)
        {
            Description = description,
            HelpName = list,
            CustomParser = result =>
            {
                string text = Token(result);
                // Case does not matter ("CUDA" is cuda); spelling does: no aliases beyond the names help shows.
                foreach (var (choice, value) in choices)
                    if (string.Equals(choice, text, StringComparison.OrdinalIgnoreCase)) return value;
                return Refuse<T?>(result, $"'{text}' is not one of {string.Join(", ", choices.Select(c => c.Name))}");
            },
        };
    }

    /// <summary>A whole number in <paramref name="min"/>..<paramref name="max"/> (no upper bound when max is int.MaxValue).</summary>
    public static Option<int?> WholeNumber(string name, string helpName, string description, int min, int max = int.MaxValue)
    {
        string accepted = max == int.MaxValue ? $"a whole number ≥ {min}" : $"a whole number in {min}..{max}";
        return new Option<int?>(name)
        {
            Description = description,
            HelpName = helpName,
            CustomParser = result =>
                int.TryParse(Token(result), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max
                    ? value
                    : Refuse<int?>(result, $"'{Token(result)}' is not {accepted}"),
        };
    }

    /// <summary>Any 64-bit unsigned value, as decimal digits.</summary>
    public static Option<ulong?> Seed(string description) => new("--seed")
    {
        Description = description,
        HelpName = "S",
        CustomParser = result =>
            ulong.TryParse(Token(result), NumberStyles.None, CultureInfo.InvariantCulture, out ulong value)
                ? value
                : Refuse<ulong?>(result, $"'{Token(result)}' is not a whole number in 0..{ulong.MaxValue}"),
    };

    /// <summary>A finite decimal number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<double?> Number(string name, string helpName, string description, double min, double max) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result =>
            double.TryParse(Token(result), NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value >= min && value <= max
                ? value
                : Refuse<double?>(result, string.Create(CultureInfo.InvariantCulture, $"'{Token(result)}' is not a number in [{min}, {max}]")),
    };

    /// <summary>
    /// A file the command writes, shown in help as FILE<paramref name="extension"/>. Where
    /// <paramref name="extensionRequired"/>, the name must say that format: a .jpg holding PNG bytes would mislead
    /// every program that opens it. What is in its place (a folder, a device) and its folder are OutputFiles'
    /// checks, also made before any work, with the output exit code.
    /// </summary>
    public static Option<string?> OutputFile(string name, string extension, string description, bool extensionRequired = false) => new(name)
    {
        Description = description,
        HelpName = "FILE" + extension,
        CustomParser = result =>
        {
            string path = Token(result);
            if (path.Trim().Length == 0) return Refuse<string?>(result, "the path is empty; give a file name");
            // A folder or device node in the way is the more telling problem; OutputFiles names it (exit 9).
            if (extensionRequired && !path.EndsWith(extension, StringComparison.OrdinalIgnoreCase)
                && PosixFile.KindOf(path, followLinks: true) is FileKind.Missing or FileKind.Regular)
                return Refuse<string?>(result, $"'{path}' does not end in {extension}, the only format it is written in");
            return path;
        },
    };

    /// <summary>A file or folder the command reads; whether it exists and holds the right thing is the reader's check.</summary>
    public static Option<string?> InputPath(string name, string helpName, string description) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result => Token(result).Trim().Length > 0 ? Token(result) : Refuse<string?>(result, "the path is empty"),
    };

    /// <summary><see cref="InputPath"/> as a positional argument.</summary>
    public static Argument<string> InputPathArgument(string name, string helpName, string description) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result => Token(result).Trim().Length > 0 ? Token(result) : Refuse<string>(result, "the path is empty"),
    };

    public delegate bool PartParser<T>(string part, out T value);

    /// <summary>A comma-separated list, each part parsed by <paramref name="parse"/>.</summary>
    public static Option<T[]?> List<T>(string name, string helpName, string description, string accepted, PartParser<T> parse, string? defaults = null) => new(name)
    {
        Description = defaults is null ? description : $"{description} (default: {defaults})",
        HelpName = helpName,
        CustomParser = result =>
        {
            string text = Token(result);
            var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) return Refuse<T[]?>(result, $"'{text}' lists nothing; give {accepted}");
            var values = new T[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!parse(parts[i], out values[i])) return Refuse<T[]?>(result, $"'{parts[i]}' is not {accepted}");
            }
            return values;
        },
    };

    private static string Token(ArgumentResult result) => result.Tokens.Count == 1 ? result.Tokens[0].Value : "";

    private static T Refuse<T>(ArgumentResult result, string problem)
    {
        string option = result.Parent is OptionResult { Option: var o } ? o.Name : $"<{result.Argument.HelpName ?? result.Argument.Name}>";
        result.AddError($"{option}: {problem}");
        return default!;
    }

    /// <summary>
    /// Creates the backend and says on stderr which one was chosen, in one short line ("device: cpu, AMD EPYC, 2
    /// threads, AVX-512"), so timings are never ambiguous; why CUDA was not taken and the full device details
    /// (NVRTC, kernel versions) come with --verbose.
    /// </summary>
    public static IBackend CreateBackend(DeviceKind kind, bool verbose, TextWriter log)
    {
        var backend = BackendFactory.Create(kind, out BackendChoice choice);
        log.WriteLine(verbose ? $"device: {choice}"
            : choice.WhyNotCuda is null ? $"device: {choice.Summary}"
            : $"device: {choice.Summary} (no usable CUDA GPU; --verbose says why)");
        return backend;
    }
}
