using System.Text.RegularExpressions;
using Diffusion.Kernels.Backends.Cuda;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// cuLaunchKernel takes its arguments as an untyped array of pointers: pass an int where the kernel expects a float,
/// or one argument too few, and the kernel silently reads garbage. Without a GPU this checks the launch code against
/// the kernels instead: the kernels' parameter lists come from the PTX NVRTC generates (.u64 for a pointer, .u32 for
/// an int, .f32 for a float), the host's from CudaBackend.cs — each entry name's launch, the stackalloc array it
/// passes, and the declared type of every local whose address goes into that array.
/// </summary>
public sealed partial class LaunchSignatureTests(ITestOutputHelper output)
{
    [Fact]
    public void Every_launch_passes_the_kernel_its_parameter_types_in_order()
    {
        KernelCompilationTests.RequireNvrtc();
        var kernels = KernelCompilationTests.Entries.Keys.SelectMany(PtxParameters).ToDictionary(p => p.Key, p => p.Value);
        var launches = HostLaunches(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "src", "Diffusion.Kernels", "Backends", "Cuda", "CudaBackend.cs")));

        launches.Keys.Should().BeEquivalentTo(kernels.Keys, "every kernel entry point is launched by CudaBackend, and only those");
        foreach (var (entry, host) in launches)
        {
            output.WriteLine($"{entry,-20} ({string.Join(", ", host)})");
            host.Should().Equal(kernels[entry], $"the arguments CudaBackend passes to {entry} must match its parameters");
        }
    }

    /// <summary>Entry name → PTX parameter types, from NVRTC's PTX for <paramref name="file"/>.</summary>
    private static IEnumerable<KeyValuePair<string, string[]>> PtxParameters(string file)
    {
        string source = KernelSources.Read(file);
        var compiled = NvrtcCompiler.Compile(file, source, NvrtcCompiler.BaseOptions(new KernelTarget(80, Cubin: false)), cubin: false);
        string ptx = System.Text.Encoding.ASCII.GetString(compiled.Image);
        foreach (Match entry in PtxEntry().Matches(ptx))
        {
            string[] types = PtxParameter().Matches(entry.Groups[2].Value).Select(m => m.Groups[1].Value).ToArray();
            yield return new(entry.Groups[1].Value, types);
        }
    }

    /// <summary>
    /// Entry name → PTX types of the arguments CudaBackend passes. An entry name literal belongs to the first
    /// LaunchKernel call that ends after it (the call itself, or the one after the switch or lookup naming it).
    /// </summary>
    private static Dictionary<string, string[]> HostLaunches(string code)
    {
        var result = new Dictionary<string, string[]>();
        var methods = MethodStart().Matches(code).Select(m => m.Index).Append(code.Length).ToArray();
        for (int i = 0; i + 1 < methods.Length; i++)
        {
            string method = code[methods[i]..methods[i + 1]];
            var calls = LaunchCall().Matches(method).ToArray();
            if (calls.Length == 0) continue;
            var types = DeclaredTypes(method);
            foreach (Match literal in EntryLiteral().Matches(method))
            {
                string entry = literal.Groups[1].Value;
                if (!KernelCompilationTests.Entries.Values.Any(names => names.Contains(entry))) continue;
                var call = calls.First(c => c.Index + c.Length > literal.Index);
                string[] arguments = ArgumentArray(method, call.Groups[1].Value);
                string[] ptxTypes = arguments.Select(a => types.TryGetValue(a, out string? t) ? PtxType(t) : $"undeclared {a}").ToArray();
                if (result.TryGetValue(entry, out var earlier))
                    earlier.Should().Equal(ptxTypes, $"{entry} is launched twice with different arguments");
                result[entry] = ptxTypes;
            }
        }
        return result;
    }

    /// <summary>
    /// The locals whose addresses fill <paramref name="array"/>: an initialiser list, or (as for the half-precision
    /// convolution) a copy of another array's first n elements followed by single-element assignments.
    /// </summary>
    private static string[] ArgumentArray(string method, string array)
    {
        var list = Regex.Match(method, $@"IntPtr\* {array} = stackalloc IntPtr\[\]\s*\{{(.*?)\}};", RegexOptions.Singleline);
        if (list.Success) return AddressOf().Matches(list.Groups[1].Value).Select(m => m.Groups[1].Value).ToArray();

        var copy = Regex.Match(method, $@"for \(int i = 0; i < (\d+); i\+\+\) {array}\[i\] = (\w+)\[i\];");
        copy.Success.Should().BeTrue($"the launch argument array {array} must be an initialiser list or a prefix copy the test understands");
        var arguments = ArgumentArray(method, copy.Groups[2].Value).Take(int.Parse(copy.Groups[1].Value)).ToList();
        foreach (Match set in Regex.Matches(method, $@"{array}\[(\d+)\] = \(IntPtr\)\(&(\w+)\);"))
        {
            int.Parse(set.Groups[1].Value).Should().Be(arguments.Count, $"{array} is filled in order");
            arguments.Add(set.Groups[2].Value);
        }
        return [.. arguments];
    }

    /// <summary>
    /// Name → C# type for the method's parameters and locals of the primitive types: from each "type name" the
    /// declaration runs to the ';' (or the ')' closing a parameter list), split at the commas outside brackets.
    /// </summary>
    private static Dictionary<string, string> DeclaredTypes(string method)
    {
        var types = new Dictionary<string, string>();
        foreach (Match declaration in Declaration().Matches(method))
        {
            int end = declaration.Index + declaration.Length, depth = 0;
            for (; end < method.Length; end++)
            {
                char c = method[end];
                if (c is '(' or '[' or '{') depth++;
                else if (c is ')' or ']' or '}') depth--;
                if (depth < 0 || (c == ';' && depth == 0)) break;
            }
            foreach (string part in SplitTopLevel(method[(declaration.Index + declaration.Length)..end]))
            {
                string name = part.Split('=')[0].Trim();
                if (Regex.IsMatch(name, @"^\w+$")) types[name] = declaration.Groups[1].Value;
            }
        }
        return types;
    }

    /// <summary>Splits "a = f(x, y), b = 2" at the commas outside brackets.</summary>
    private static IEnumerable<string> SplitTopLevel(string text)
    {
        int depth = 0, start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] is '(' or '[' or '{') depth++;
            else if (text[i] is ')' or ']' or '}') depth--;
            else if (text[i] == ',' && depth == 0)
            {
                yield return text[start..i];
                start = i + 1;
            }
        }
        yield return text[start..];
    }

    private static string PtxType(string csharpType) => csharpType switch
    {
        "ulong" => "u64", // CUdeviceptr
        "int" => "u32",
        "float" => "f32",
        _ => $"unexpected host type {csharpType}",
    };

    [GeneratedRegex(@"\.entry\s+(\w+)\s*\(([^)]*)\)")]
    private static partial Regex PtxEntry();

    [GeneratedRegex(@"\.param\s+\.(\w+)")]
    private static partial Regex PtxParameter();

    [GeneratedRegex(@"^    (?:public|private|internal) [^\n]*\(", RegexOptions.Multiline)]
    private static partial Regex MethodStart();

    [GeneratedRegex(@"LaunchKernel\([^;]*?,\s*(\w+)\);", RegexOptions.Singleline)]
    private static partial Regex LaunchCall();

    [GeneratedRegex(@"""(\w+)""")]
    private static partial Regex EntryLiteral();

    [GeneratedRegex(@"\(IntPtr\)\(&(\w+)\)")]
    private static partial Regex AddressOf();

    // The type of a declaration or a parameter, up to its first name: "float eps", "int a = 1, b = f(x, y);".
    [GeneratedRegex(@"(?<![\w.])(ulong|long|int|float|double|uint|nint|nuint)\s+(?=\w+\s*[=,;)])")]
    private static partial Regex Declaration();
}
