using System.Diagnostics;
using System.Globalization;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.IO;
using Diffusion.Kernels.Tests.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>
/// The real <c>diffuse</c> process in hostile surroundings (issue 16): FIFOs, device nodes and folders where files
/// belong, a closed or full console, a full disk, signals. Each case must end in its documented exit code with one
/// readable line: no signal death, no hang, nothing destroyed, nothing half-written. Every run uses the tiny golden
/// model (or the small default one where sampling must last), so the suite takes about a minute.
/// </summary>
public sealed class FaultInjectionTests : IDisposable
{
    private static readonly Golden Tiny = Golden.Load("unet_tiny");

    /// <summary>A refused FIFO returns at once; a blocking open(2) never would.</summary>
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(60);

    private readonly TempDirectory _inputs = new();
    private readonly TempDirectory _outputs = new();

    public void Dispose()
    {
        _inputs.Dispose();
        _outputs.Dispose();
    }

    private static bool IsRoot => OperatingSystem.IsLinux() && Environment.UserName == "root";

    // ---- inputs that are not regular files ----

    [Theory]
    [InlineData("weights", 3)]
    [InlineData("config", 3)]
    [InlineData("scheduler", 3)]
    [InlineData("input", 4)]
    [InlineData("noise", 4)]
    public void A_fifo_as_any_input_is_refused_at_once(string which, int code)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "FIFOs are refused by the Linux open path");
        var (args, replaced) = InputCase(which, path => Run("mkfifo", path));

        var run = DiffuseProcess.Finish(DiffuseProcess.Start(args), HangLimit, args);

        run.ExitCode.Should().Be(code, run.StandardError);
        OneLine(run.StandardError).Should().Contain(replaced).And.Contain("is a FIFO (named pipe), not a regular file");
        NothingWritten();
    }

    [Theory]
    [InlineData("config", 3)]
    [InlineData("scheduler", 3)]
    [InlineData("noise", 4)]
    public void Dev_zero_as_an_input_is_refused_before_reading(string which, int code)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "device nodes are told apart on Linux");
        var (args, replaced) = InputCase(which, path => File.CreateSymbolicLink(path, "/dev/zero"));

        var run = DiffuseProcess.Finish(DiffuseProcess.Start(args), HangLimit, args);

        run.ExitCode.Should().Be(code, run.StandardError);
        OneLine(run.StandardError).Should().Contain(replaced).And.Contain("is a character device, not a regular file");
        NothingWritten();
    }

    /// <summary>generate once took a 200 MiB scheduler config that info refused: one limit now, in every command.</summary>
    [Theory]
    [InlineData("generate")]
    [InlineData("info")]
    public void A_scheduler_config_over_the_limit_is_refused_by_every_command(string command)
    {
        string model = Model("big");
        string scheduler = Path.Combine(model, ModelFolder.SchedulerConfigFileName);
        HostileInput.WriteOversizedConfig(scheduler);

        var run = DiffuseProcess.Run(command == "info" ? ["info", model] : Generate(model));

        run.ExitCode.Should().Be(3, run.StandardError);
        OneLine(run.StandardError).Should().Contain(scheduler).And.Contain("holds more than 16,777,216 bytes");
        NothingWritten();
    }

    [Theory]
    [InlineData("directory", "is a directory, not a regular file")]
    [InlineData("dangling", "is a symbolic link to 'nowhere.safetensors', which does not exist")]
    [InlineData("loop", "is a symbolic link that loops")]
    public void Weights_that_are_not_a_file_make_a_bad_model(string kind, string problem)
    {
        string model = Model(kind);
        string weights = Path.Combine(model, ModelFolder.WeightsFileName);
        File.Delete(weights);
        switch (kind)
        {
            case "directory": Directory.CreateDirectory(weights); break;
            case "dangling": File.CreateSymbolicLink(weights, "nowhere.safetensors"); break;
            default: File.CreateSymbolicLink(weights, weights); break;
        }

        var generate = DiffuseProcess.Run(Generate(model));
        var info = DiffuseProcess.Run("info", model);

        generate.ExitCode.Should().Be(3, generate.StandardError);
        info.ExitCode.Should().Be(3, info.StandardError);
        OneLine(generate.StandardError).Should().Contain(weights).And.Contain(problem);
        NothingWritten();
    }

    [Fact]
    public void A_directory_as_the_scheduler_config_is_refused_not_taken_for_defaults()
    {
        string model = Model("scheduler-dir");
        string scheduler = Path.Combine(model, ModelFolder.SchedulerConfigFileName);
        File.Delete(scheduler);
        Directory.CreateDirectory(scheduler);

        var run = DiffuseProcess.Run(Generate(model));

        run.ExitCode.Should().Be(3, run.StandardError);
        OneLine(run.StandardError).Should().Contain(scheduler).And.Contain("is a directory");
        run.StandardError.Should().NotContain("using diffusers' DDPMScheduler defaults");
        NothingWritten();
    }

    /// <summary>
    /// The input is cut to 4 KiB while diffuse reads its 50 MB: the process is stopped (SIGSTOP) once /proc shows the
    /// file open and 4 MiB more read since, truncated, then continued. Through a memory map this was SIGBUS, exit 134.
    /// The input is F16, which is read in 1 MiB chunks, so the stop lands between two of them; stopped at the open
    /// alone, it sometimes landed before the file's length was taken, and diffuse saw a file that was short from the start.
    /// </summary>
    [Fact]
    public void An_input_that_shrinks_while_it_is_read_is_a_bad_input_not_a_crash()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "watches /proc for the moment the file is opened");
        string input = _inputs.File("shrinking.safetensors");
        SafetensorsWriter.Write(input, [new("sample", new HostTensor([25, 1, 1000, 1000]))], dtype: SafetensorsDType.F16);
        var process = DiffuseProcess.Start(Unet(Model("m"), input, Output("y.safetensors")));

        string pid = process.Id.ToString(CultureInfo.InvariantCulture);
        bool reading = WaitUntilOpen(process, input) && WaitUntilRead(process, 4 << 20);
        if (reading) Run("kill", "-STOP", pid);
        using (var file = new FileStream(input, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) file.SetLength(4096);
        if (reading) Run("kill", "-CONT", pid);
        var run = DiffuseProcess.Finish(process, HangLimit);

        reading.Should().BeTrue("diffuse opens and reads its --input");
        run.ExitCode.Should().Be(4, run.StandardError);
        OneLine(run.StandardError).Should().Contain(input).And.Contain("shrank to 4096 bytes while being read");
        NothingWritten();
    }

    [Fact]
    public void An_empty_batch_for_unet_is_a_bad_input()
    {
        string input = _inputs.File("empty.safetensors");
        int[] shape = [0, .. Tiny.Sample.Shape[1..]];
        SafetensorsWriter.Write(input, [new("sample", new HostTensor(shape, []))]);

        var run = DiffuseProcess.Run(Unet(Model("m"), input, Output("y.safetensors")));

        run.ExitCode.Should().Be(4, run.StandardError);
        OneLine(run.StandardError).Should().Contain(input).And.Contain("is empty");
        NothingWritten();
    }

    [Fact]
    public void Unet_refuses_a_non_finite_output_as_generate_does()
    {
        var weights = new Dictionary<string, HostTensor>(Tiny.Weights);
        var bias = (float[])weights["conv_out.bias"].Data.Clone();
        bias[0] = float.NaN;
        weights["conv_out.bias"] = new HostTensor(weights["conv_out.bias"].Shape, bias);
        string model = _inputs.File("nan");
        CheckpointFixture.WriteUNetFolder(model, File.ReadAllText(Tiny.ConfigPath), weights);

        var run = DiffuseProcess.Run(Unet(model, SampleInput(), Output("y.safetensors")));

        run.ExitCode.Should().Be(7, run.StandardError);
        OneLine(run.StandardError).Should().Contain("non-finite").And.Contain("nothing was written");
        NothingWritten();
    }

    // ---- outputs that must not be replaced or cannot be written ----

    /// <summary>As root, --force once replaced /dev/null itself with a PNG. Our own node here, never a real /dev one.</summary>
    [Theory]
    [InlineData("generate --out")]
    [InlineData("generate --save-tensor")]
    [InlineData("unet --out")]
    [InlineData("bench --json")]
    public void A_device_node_is_never_replaced_even_with_force(string option)
    {
        Assert.SkipUnless(IsRoot, "mknod needs root");
        string node = Output("null");
        Assert.SkipUnless(TryRun("mknod", node, "c", "1", "3"), "mknod is not permitted here (no CAP_MKNOD)");

        var run = DiffuseProcess.Run([.. Writing(option, node), "--force"]);

        run.ExitCode.Should().Be(9, run.StandardError);
        OneLine(run.StandardError).Should().Contain(node).And.Contain("is a character device; only a regular file is ever replaced");
        PosixFile.KindOf(node, followLinks: false).Should().Be(FileKind.CharacterDevice);
        Directory.GetFileSystemEntries(_outputs.Path).Should().Equal(node);
    }

    [Fact]
    public void A_fifo_as_the_output_is_refused_without_blocking()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "FIFOs are told apart on Linux");
        string fifo = Output("out.png");
        Run("mkfifo", fifo);
        string[] args = [.. Generate(Model("m"), fifo), "--force"];

        var run = DiffuseProcess.Finish(DiffuseProcess.Start(args), HangLimit, args);

        run.ExitCode.Should().Be(9, run.StandardError);
        OneLine(run.StandardError).Should().Contain("is a FIFO (named pipe)");
        PosixFile.KindOf(fifo, followLinks: false).Should().Be(FileKind.Fifo);
    }

    [Theory]
    [InlineData("directory", 9, "is a directory")]
    [InlineData("no-folder", 9, "does not exist")]
    [InlineData("long-name", 9, "the file name is 256 bytes long")]
    [InlineData("empty", 2, "--out: the path is empty")]
    public void An_output_that_cannot_be_written_is_refused_before_sampling(string kind, int code, string problem)
    {
        string output = kind switch
        {
            "directory" => _outputs.Path,
            "no-folder" => Path.Combine(_outputs.Path, "missing", "out.png"),
            "long-name" => Output(new string('n', 252) + ".png"),
            _ => "",
        };

        var run = DiffuseProcess.Run(Generate(Model("m"), output));

        run.ExitCode.Should().Be(code, run.StandardError);
        OneLine(run.StandardError).Should().Contain(problem);
        run.StandardError.Should().NotContain("step 1", "an unwritable output is refused before the work");
        NothingWritten();
    }

    [Fact]
    public void The_same_file_for_out_and_save_tensor_is_a_usage_error()
    {
        string png = Output("o.png");

        var run = DiffuseProcess.Run([.. Generate(Model("m"), png), "--save-tensor", Path.Combine(_outputs.Path, ".", "o.png")]);

        run.ExitCode.Should().Be(2, run.StandardError);
        OneLine(run.StandardError).Should().Contain("--out and --save-tensor both name");
        NothingWritten();
    }

    /// <summary>246 characters is a legal name; the temporary name beside it used to exceed 255 bytes.</summary>
    [Fact]
    public void A_246_character_output_name_is_written()
    {
        string png = Output(new string('a', 242) + ".png");

        var run = DiffuseProcess.Run(Generate(Model("m"), png));

        run.ExitCode.Should().Be(0, run.StandardError);
        Directory.GetFiles(_outputs.Path).Should().Equal(png);
    }

    /// <summary>The tensor fits the small file system, the PNG after it does not: neither may remain.</summary>
    [Fact]
    public void A_full_disk_leaves_neither_output_and_keeps_the_old_file()
    {
        Assert.SkipUnless(IsRoot, "mounting a small tmpfs needs root");
        using var mount = new SmallTmpfs(_outputs.File("full"), "24k");
        string png = Path.Combine(mount.Path, "o.png"), tensor = Path.Combine(mount.Path, "o.safetensors");
        string[] args = ["generate", "--steps", "2", "--batch", "4", "--seed", "1", "--scale", "8", "--device", "cpu", "--out", png, "--save-tensor", tensor];

        var both = DiffuseProcess.Run(args);
        File.WriteAllText(png, "old image");
        var forced = DiffuseProcess.Run([.. args, "--force"]);

        both.ExitCode.Should().Be(9, both.StandardError);
        OneLine(both.StandardError).Should().Be($"diffuse: {png}: cannot be written: No space left on device");
        forced.ExitCode.Should().Be(9, forced.StandardError);
        File.ReadAllText(png).Should().Be("old image");
        Directory.GetFileSystemEntries(mount.Path).Should().Equal(png);
    }

    [Fact]
    public void A_stale_temporary_file_of_a_killed_run_is_removed_and_reported()
    {
        string png = Output("out.png");
        string stale = Output($".out.png.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(stale, "half a png");

        var run = DiffuseProcess.Run(Generate(Model("m"), png));

        run.ExitCode.Should().Be(0, run.StandardError);
        run.StandardError.Should().Contain($"note: removed {stale}");
        Directory.GetFiles(_outputs.Path).Should().Equal(png);
    }

    /// <summary>bench --json once overwrote an existing file in place, without --force.</summary>
    [Fact]
    public void Bench_json_keeps_an_existing_file_without_force_and_replaces_it_atomically_with_it()
    {
        string json = Output("bench.json");
        File.WriteAllText(json, "keep me");
        string[] args = ["bench", "--ops", "sampler", "--batch", "1", "--iterations", "1", "--warmup", "0", "--device", "cpu", "--json", json];

        var refused = DiffuseProcess.Run(args);
        string kept = File.ReadAllText(json);
        var forced = DiffuseProcess.Run([.. args, "--force"]);

        refused.ExitCode.Should().Be(5, refused.StandardError);
        refused.StandardOutput.Should().BeEmpty("it is refused before anything is measured");
        kept.Should().Be("keep me");
        forced.ExitCode.Should().Be(0, forced.StandardError);
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(json)).RootElement.GetProperty("rows").GetArrayLength().Should().BeGreaterThan(0);
        Directory.GetFiles(_outputs.Path).Should().Equal(json);
    }

    // ---- a console that cannot be written ----

    [Theory]
    [InlineData("2>&-")]
    [InlineData("2>/dev/full")]
    [InlineData(">&-")]
    [InlineData(">&- 2>&-")]
    public void A_closed_or_full_console_still_yields_the_image_and_the_exit_code(string redirections)
    {
        string png = Output("out.png");

        var run = DiffuseProcess.RunRedirected(redirections, Generate(Model("m"), png));

        run.ExitCode.Should().Be(0, run.StandardError);
        File.ReadAllBytes(png).Take(4).Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G');
        Directory.GetFiles(_outputs.Path).Should().Equal(png);
    }

    [Theory]
    [InlineData("2>&-")]
    [InlineData("2>/dev/full")]
    public void A_failure_with_a_closed_stderr_keeps_its_exit_code(string redirections)
    {
        string png = Output("exists.png");
        File.WriteAllText(png, "keep me");

        var run = DiffuseProcess.RunRedirected(redirections, Generate(Model("m"), png));

        run.ExitCode.Should().Be(5);
        File.ReadAllText(png).Should().Be("keep me");
    }

    /// <summary>info's product, and bench's without --json, is its standard output: losing it is exit 9, said on stderr.</summary>
    [Theory]
    [InlineData("info", ">&-")]
    [InlineData("info", ">/dev/full")]
    [InlineData("bench", ">/dev/full")]
    public void A_command_whose_product_is_stdout_exits_9_without_one(string command, string redirections)
    {
        string[] args = command == "info"
            ? ["info", Model("m")]
            : ["bench", "--ops", "sampler", "--batch", "1", "--iterations", "1", "--warmup", "0", "--device", "cpu"];

        var run = DiffuseProcess.RunRedirected(redirections, args);

        run.ExitCode.Should().Be(9, run.StandardError);
        OneLine(run.StandardError).Should().StartWith("diffuse: standard output cannot be written");
    }

    // ---- signals ----

    /// <summary>SIGHUP is an SSH disconnect; each signal cancels like Ctrl-C, and nothing, temporary files included, stays.</summary>
    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    [InlineData("HUP")]
    [InlineData("QUIT")]
    public void Every_terminating_signal_cancels_cleanly(string signal)
    {
        string png = Output("never.png");
        var process = DiffuseProcess.Start("generate", "--scheduler", "ddpm", "--steps", "1000", "--batch", "4",
            "--device", "cpu", "--out", png, "--save-tensor", Output("never.safetensors"));
        var stderr = new System.Text.StringBuilder();
        while (process.StandardError.ReadLine() is { } line)
        {
            stderr.AppendLine(line);
            if (line.StartsWith("step ", StringComparison.Ordinal)) break;
        }
        Run("kill", "-" + signal, process.Id.ToString(CultureInfo.InvariantCulture));

        var run = DiffuseProcess.Finish(process, HangLimit);

        run.ExitCode.Should().Be(130, stderr + run.StandardError);
        run.StandardError.Should().Contain("diffuse: cancelled; nothing was written");
        NothingWritten();
    }

    // ---- helpers ----

    /// <summary>The arguments of a run reading the input <paramref name="which"/>, made by <paramref name="make"/>.</summary>
    private (string[] Args, string Replaced) InputCase(string which, Action<string> make)
    {
        string model = Model(which);
        string path = which switch
        {
            "weights" => Path.Combine(model, ModelFolder.WeightsFileName),
            "config" => Path.Combine(model, ModelFolder.ConfigFileName),
            "scheduler" => Path.Combine(model, ModelFolder.SchedulerConfigFileName),
            _ => _inputs.File(which + ".safetensors"),
        };
        File.Delete(path);
        make(path);
        string[] args = which switch
        {
            "weights" => ["info", model],
            "input" => Unet(model, path, Output("y.safetensors")),
            "noise" => [.. Generate(model), "--noise", path],
            _ => Generate(model),
        };
        return (args, path);
    }

    /// <summary>The tiny golden U-Net with a scheduler config beside it (a flat diffusers layout).</summary>
    private string Model(string name)
    {
        string folder = _inputs.File("model-" + name);
        CheckpointFixture.WriteUNetFolder(folder, File.ReadAllText(Tiny.ConfigPath), Tiny.Weights);
        File.WriteAllText(Path.Combine(folder, ModelFolder.SchedulerConfigFileName), "{\"num_train_timesteps\": 1000}");
        return folder;
    }

    private string SampleInput()
    {
        string path = _inputs.File("sample.safetensors");
        SafetensorsWriter.Write(path, [new("sample", Tiny.Sample)]);
        return path;
    }

    private string Output(string name) => _outputs.File(name);

    private string[] Generate(string model, string? output = null) =>
        ["generate", "--model", model, "--steps", "2", "--batch", "1", "--seed", "2", "--device", "cpu", "--out", output ?? Output("out.png")];

    private static string[] Unet(string model, string input, string output) =>
        ["unet", "--model", model, "--input", input, "--timestep", "5", "--device", "cpu", "--out", output];

    private string[] Writing(string option, string path) => option switch
    {
        "generate --out" => Generate(Model("m"), path),
        "generate --save-tensor" => [.. Generate(Model("m")), "--save-tensor", path],
        "unet --out" => Unet(Model("m"), SampleInput(), path),
        _ => ["bench", "--ops", "sampler", "--batch", "1", "--iterations", "1", "--warmup", "0", "--device", "cpu", "--json", path],
    };

    /// <summary>Polls the process's open descriptors until one is <paramref name="path"/>; false if it exits first.</summary>
    private static bool WaitUntilOpen(Process process, string path)
    {
        string descriptors = $"/proc/{process.Id.ToString(CultureInfo.InvariantCulture)}/fd";
        var clock = Stopwatch.StartNew();
        while (!process.HasExited && clock.Elapsed < HangLimit)
        {
            try
            {
                foreach (string fd in Directory.EnumerateFileSystemEntries(descriptors))
                {
                    if (new FileInfo(fd).LinkTarget == path) return true;
                }
            }
            catch (IOException)
            {
                // A descriptor closed while we looked at it.
            }
        }
        return false;
    }

    /// <summary>Waits until the process has read <paramref name="bytes"/> more (rchar in /proc/pid/io) than when called.</summary>
    private static bool WaitUntilRead(Process process, long bytes)
    {
        string io = $"/proc/{process.Id.ToString(CultureInfo.InvariantCulture)}/io";
        long? start = null;
        var clock = Stopwatch.StartNew();
        while (!process.HasExited && clock.Elapsed < HangLimit)
        {
            string? line;
            try
            {
                line = File.ReadLines(io).FirstOrDefault(l => l.StartsWith("rchar:", StringComparison.Ordinal));
            }
            catch (IOException)
            {
                return false;
            }
            if (line == null) return false;
            long read = long.Parse(line.AsSpan(6), CultureInfo.InvariantCulture);
            start ??= read;
            if (read - start >= bytes) return true;
        }
        return false;
    }

    /// <summary>Nothing at all in the outputs folder: no output, no temporary file.</summary>
    private void NothingWritten() => Directory.GetFileSystemEntries(_outputs.Path).Should().BeEmpty();

    private static void Run(string program, params string[] args) =>
        TryRun(program, args).Should().BeTrue($"{program} {string.Join(' ', args)} succeeds");

    private static bool TryRun(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0;
    }

    /// <summary>The error line; status lines ("device: cpu", notes) may precede it.</summary>
    private static string OneLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        lines.Should().NotContain(l => l.StartsWith("at ", StringComparison.Ordinal), "stack traces are for --verbose");
        var errors = lines.Where(l => l.StartsWith("diffuse: ", StringComparison.Ordinal)).ToArray();
        errors.Should().ContainSingle("every failure is told in one line: {0}", stderr);
        return errors[0];
    }

    /// <summary>A tmpfs of a few pages, unmounted on dispose: a full disk without filling a real one.</summary>
    private sealed class SmallTmpfs : IDisposable
    {
        public SmallTmpfs(string path, string size)
        {
            Path = path;
            Directory.CreateDirectory(path);
            // Root in a container without CAP_SYS_ADMIN cannot mount: that is a reason to skip, not a failure.
            Assert.SkipUnless(TryRun("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path), "mounting a tmpfs is not permitted here");
        }

        public string Path { get; }

        public void Dispose() => FaultInjectionTests.Run("umount", Path);
    }
}
