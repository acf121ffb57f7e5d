using System.CommandLine;
using System.Text.RegularExpressions;
using Diffusion.Cli;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Tests.IO;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>
/// The contract of the <c>diffuse</c> command line, as a newcomer meets it: every bad option value is a usage error
/// (exit 2) in one line naming the value and what is accepted, before the device is opened or the model loaded;
/// help shows exactly what the parser takes; the README's first command and help's examples work as shown.
/// </summary>
public sealed partial class CommandLineContractTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Each row: the arguments and what the error line must say.</summary>
    public static TheoryData<string[], string[]> BadValues() => new()
    {
        { ["generate", "--steps", "abc"], ["--steps", "'abc'", "whole number ≥ 1"] },
        { ["generate", "--steps", "0"], ["--steps", "'0'", "≥ 1"] },
        { ["generate", "--seed", "-1"], ["--seed", "'-1'", "0..18446744073709551615"] },
        { ["generate", "--seed", "18446744073709551616"], ["--seed", "0..18446744073709551615"] },
        { ["generate", "--batch", "x"], ["--batch", "'x'", "whole number in 1..4096"] },
        { ["generate", "--batch", "-3"], ["--batch", "'-3'"] },
        { ["generate", "--batch", "4097"], ["--batch", "'4097'", "1..4096"] },
        { ["generate", "--eta", "x"], ["--eta", "'x'", "[0, 1]"] },
        { ["generate", "--eta", "1.5"], ["--eta", "'1.5'", "[0, 1]"] },
        { ["generate", "--eta", "NaN"], ["--eta", "'NaN'"] },
        { ["generate", "--scale", "0"], ["--scale", "'0'", "1..16"] },
        { ["generate", "--scheduler", "DpmSolverPlusPlus2M"], ["--scheduler", "ddpm, ddim, dpm++2m, euler-a"] },
        { ["generate", "--device", "tpu"], ["--device", "'tpu'", "cpu, cuda, emulated, auto"] },
        { ["generate", "--out", "x.jpg"], ["--out", "'x.jpg'", ".png"] },
        { ["generate", "--out", ""], ["--out", "the path is empty"] },
        { ["generate", "--save-tensor", " "], ["--save-tensor", "the path is empty"] },
        { ["bench", "--json", ""], ["--json", "the path is empty"] },
        { ["generate", "--force", "yes"], ["'yes'"] },
        { ["generate", "--model", ""], ["--model", "empty"] },
        { ["generate", "--noise", " "], ["--noise", "empty"] },
        { ["info", ""], ["<PATH>", "empty"] },
        // Only the model's scheduler config knows the upper bound; it is read before the device is opened.
        { ["generate", "--steps", "1001"], ["1..1000", "1001"] },
        { ["unet", "--model", "m", "--input", "i.safetensors", "--timestep", "1", "--out", "o.safetensors", "--repeat", "0"], ["--repeat", "'0'"] },
        { ["bench", "--iterations", "0"], ["--iterations", "'0'"] },
        { ["bench", "--warmup", "-1"], ["--warmup", "'-1'", "≥ 0"] },
        { ["bench", "--ops", "conv,fft"], ["--ops", "'fft'", "conv"] },
        { ["bench", "--batch", "1,0"], ["--batch", "'0'", "1..4096"] },
        { ["bench", "--half", "--device", "cpu"], ["--half", "CUDA"] },
    };

    [Theory]
    [MemberData(nameof(BadValues))]
    public void A_bad_value_is_a_usage_error_before_any_work(string[] args, string[] says)
    {
        var run = DiffuseProcess.RunIn(_dir.Path, args);

        run.ExitCode.Should().Be(2, run.StandardError);
        var lines = run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().ContainSingle("nothing (device, sampling, progress) comes before the refusal: {0}", run.StandardError)
            .Which.Should().StartWith("diffuse: ").And.ContainAll(says);
        NamesNoType(lines[0]);
        run.StandardOutput.Should().BeEmpty();
        Directory.GetFileSystemEntries(_dir.Path).Should().BeEmpty();
    }

    /// <summary>
    /// A folder named as --out is an output that cannot be written (exit 9, issue 16's code for "a directory in its
    /// place"), refused like a bad value: one line naming the path, before the device line or any sampling.
    /// </summary>
    [Fact]
    public void A_folder_as_out_is_refused_before_any_work()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_dir.Path, "pictures.png")).FullName;

        var run = DiffuseProcess.RunIn(_dir.Path, "generate", "--out", folder);

        run.ExitCode.Should().Be(9, run.StandardError);
        run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().ContainSingle()
            .Which.Should().StartWith("diffuse: ").And.Contain(folder).And.Contain("is a directory");
        Directory.GetFileSystemEntries(_dir.Path).Should().Equal(folder);
    }

    /// <summary>
    /// Every option of every command, given values its parser must refuse or take, never answers with a message
    /// naming a .NET type (System.CommandLine's default for a value it cannot convert).
    /// </summary>
    [Fact]
    public void No_option_of_any_command_answers_with_a_type_name()
    {
        var root = Commands.Root();
        int refused = 0;
        foreach (var command in root.Subcommands)
        {
            foreach (var option in command.Options.Where(o => o.Name != "--help"))
            {
                foreach (string value in (string[])["x", "-1", "", "1e999", "18446744073709551616", "1.5"])
                {
                    var parsed = root.Parse([command.Name, option.Name, value]);
                    if (Commands.ErrorLine(parsed) is not { } error) continue;
                    refused++;
                    NamesNoType(error);
                    error.Should().StartWith("diffuse: ").And.Contain($"diffuse {command.Name} --help");
                }
            }
        }
        refused.Should().BeGreaterThan(40, "most of these values are wrong for most options");
    }

    [Fact]
    public void Help_shows_exactly_the_names_the_parser_accepts()
    {
        var help = DiffuseProcess.Run("generate", "--help");
        help.ExitCode.Should().Be(0);

        foreach (string option in (string[])["--scheduler", "--device"])
        {
            var shown = Regex.Match(help.StandardOutput, Regex.Escape(option) + @" <([^>]+)>");
            shown.Success.Should().BeTrue(help.StandardOutput);
            var names = shown.Groups[1].Value.Split('|');
            names.Length.Should().BeGreaterThan(2);
            foreach (string name in names)
                GenerateCommand.Create().Parse([option, name]).Errors.Should().BeEmpty($"help offers {option} {name}");
        }
        help.StandardOutput.Should().Contain("<ddpm|ddim|dpm++2m|euler-a>").And.Contain("<cpu|cuda|emulated|auto>")
            .And.NotContain("Ddim").And.NotContain("DpmSolverPlusPlus2M").And.NotContain("EulerAncestral").And.NotContain("[default: ");

        // bench --ops lists every op it takes, and takes every op it lists.
        var bench = DiffuseProcess.Run("bench", "--help").StandardOutput;
        var listed = Regex.Match(bench, @"ops to run, of ([a-z_, ]+) \(default").Groups[1].Value.Split(", ");
        listed.Should().BeEquivalentTo(BenchCases.OpNames);
        foreach (string op in listed) BenchCommand.Create().Parse(["--ops", op]).Errors.Should().BeEmpty(op);
    }

    /// <summary>
    /// Each "Examples:" line of <c>diffuse generate --help</c>, run exactly as written, succeeds and writes what it
    /// names. README's first command is one of them, and each runs where an earlier run left generated.png: the
    /// command without --out keeps that image and writes generated-2.png, so README's command works when run
    /// again; both names are ignored by git, so no run leaves an untracked file in a checkout.
    /// </summary>
    [Fact]
    public void The_readme_first_command_and_the_help_examples_work_as_shown()
    {
        var readme = Regex.Match(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "README.md")),
            @"```sh\ndotnet run -c Release --project src/Diffusion.Cli -- (generate[^\n]*)\n```");
        readme.Success.Should().BeTrue("README.md opens with a generate command");
        var help = DiffuseProcess.Run("generate", "--help").StandardOutput;
        var examples = help.Split('\n').SkipWhile(l => l.Trim() != "Examples:").Skip(1)
            .TakeWhile(l => l.Trim().Length > 0).Select(l => l.Trim()).ToArray();
        examples.Should().Equal(GenerateCommand.Examples).And.Contain("diffuse " + readme.Groups[1].Value);

        foreach (string example in examples)
        {
            string[] words = example.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            words[0].Should().Be("diffuse");
            string folder = Directory.CreateDirectory(Path.Combine(_dir.Path, $"example-{Array.IndexOf(examples, example)}")).FullName;
            string earlier = Path.Combine(folder, "generated.png");
            File.WriteAllText(earlier, "an earlier run's image");

            var run = DiffuseProcess.RunIn(folder, words[1..]);

            run.ExitCode.Should().Be(0, example + "\n" + run.StandardError);
            var named = words.Where(w => w.EndsWith(".png", StringComparison.Ordinal) || w.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
            if (!words.Contains("--out"))
            {
                named.Add("generated-2.png");
                run.StandardError.Should().Contain("wrote generated-2.png");
            }
            Directory.GetFiles(folder).Select(Path.GetFileName).Should().BeEquivalentTo([.. named, "generated.png"], example);
            File.ReadAllText(earlier).Should().Be("an earlier run's image");
            foreach (string png in named.Where(n => n.EndsWith(".png", StringComparison.Ordinal)))
                File.ReadAllBytes(Path.Combine(folder, png)).Take(4).Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G');
        }
        var ignored = File.ReadAllLines(Path.Combine(RepositoryPaths.Root, ".gitignore"));
        ignored.Should().Contain("/generated.png").And.Contain("/generated-*.png");
    }

    /// <summary>One short device line; why CUDA was not taken, and every detail of the device, only with --verbose.</summary>
    [Fact]
    public void The_device_line_is_short_and_verbose_adds_the_details()
    {
        string[] args = ["generate", "--steps", "1", "--batch", "1", "--seed", "1", "--device", "auto", "--scale", "1"];

        var quiet = DiffuseProcess.RunIn(_dir.Path, [.. args, "--out", "quiet.png"]);
        var verbose = DiffuseProcess.RunIn(_dir.Path, [.. args, "--out", "verbose.png", "--verbose"]);

        quiet.ExitCode.Should().Be(0, quiet.StandardError);
        string line = DeviceLine(quiet), detailed = DeviceLine(verbose);
        line.Length.Should().BeLessThan(100, line);
        line.Should().MatchRegex("^device: (cpu|cuda), ").And.NotContain("libcuda").And.NotContain("NVRTC");
        if (line.StartsWith("device: cpu", StringComparison.Ordinal))
        {
            line.Should().EndWith("(no usable CUDA GPU; --verbose says why)");
            detailed.Should().StartWith("device: cpu (auto, no CUDA: ");
        }
        else
        {
            detailed.Should().StartWith("device: cuda (auto): ").And.Contain("NVRTC");
        }
    }

    /// <summary>
    /// A batch larger than one chunk (64 images) runs in chunks, and progress is reported per chunk: with one step,
    /// the display still moves before the step ends, naming the images done.
    /// </summary>
    [Fact]
    public void Progress_moves_within_a_step_of_a_large_batch()
    {
        var run = DiffuseProcess.RunIn(_dir.Path, "generate", "--steps", "1", "--batch", "130", "--seed", "1", "--device", "cpu", "--scale", "1", "--out", "big.png");

        run.ExitCode.Should().Be(0, run.StandardError);
        var lines = run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().Contain(l => l.StartsWith("sampling: ", StringComparison.Ordinal) && l.EndsWith("130 images in 3 chunks of up to 64", StringComparison.Ordinal));
        lines.Where(l => l.StartsWith("step 1/1 images ", StringComparison.Ordinal)).Select(l => l.Split(' ')[3])
            .Should().Equal("64/130", "128/130", "130/130");
    }

    /// <summary>When --noise fixes every random value of the run, no seed is printed: it would suggest one mattered.</summary>
    [Fact]
    public void No_seed_is_mentioned_when_the_noise_file_decides_the_noise()
    {
        string noise = Path.Combine(_dir.Path, "noise.safetensors");
        SafetensorsWriter.Write(noise, [new("sample", new HostTensor([1, 1, 32, 32], SyntheticNoise()))]);
        string[] args = ["generate", "--steps", "2", "--device", "cpu", "--noise", noise];

        var ddim = DiffuseProcess.RunIn(_dir.Path, [.. args, "--scheduler", "ddim", "--out", "ddim.png"]);
        var ddpm = DiffuseProcess.RunIn(_dir.Path, [.. args, "--scheduler", "ddpm", "--out", "ddpm.png"]);
        var seeded = DiffuseProcess.RunIn(_dir.Path, [.. args, "--scheduler", "ddim", "--seed", "4", "--out", "seeded.png"]);

        ddim.ExitCode.Should().Be(0, ddim.StandardError);
        ddim.StandardError.Should().NotContainAny("seed", "Seed").And.Contain("initial noise from " + noise);
        // DDPM draws fresh noise at its first step (t > 0), so there the seed still matters and is printed.
        ddpm.StandardError.Should().MatchRegex(@"seed \d+ for the noise of later steps");
        seeded.StandardError.Should().Contain("--seed has no effect");
    }

    private static float[] SyntheticNoise()
    {
        var random = new Random(3);
        return [.. Enumerable.Range(0, 32 * 32).Select(_ => (float)(random.NextDouble() * 2 - 1))];
    }

    private static string DeviceLine(DiffuseProcess.Result run) =>
        run.StandardError.Split('\n').Should().ContainSingle(l => l.StartsWith("device: ", StringComparison.Ordinal)).Which.TrimEnd('\r');

    private static void NamesNoType(string message)
    {
        message.Should().NotContain("System.").And.NotContain("`1").And.NotContain("Nullable").And.NotContain("Int32")
            .And.NotContain("UInt64").And.NotContain("Double").And.NotContain("Boolean");
        TypeName().IsMatch(message).Should().BeFalse(message);
    }

    /// <summary>"expected type '…'", System.CommandLine's wording for a value it could not convert.</summary>
    [GeneratedRegex("expected type|Cannot parse argument")]
    private static partial Regex TypeName();
}
