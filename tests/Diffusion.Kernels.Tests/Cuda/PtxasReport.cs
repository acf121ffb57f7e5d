using System.Globalization;
using System.Text.RegularExpressions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>What ptxas -v says about one kernel entry point.</summary>
internal sealed record PtxasFunction(string Name, string Architecture, int Registers, int StackFrameBytes, int SpillStoreBytes, int SpillLoadBytes, int SharedBytes);

/// <summary>Parses the verbose ptxas output NVRTC puts in its program log when compiling to cubin.</summary>
internal static partial class PtxasReport
{
    public static IReadOnlyList<PtxasFunction> Parse(string log)
    {
        var functions = new List<PtxasFunction>();
        string? name = null, arch = null;
        int stack = 0, spillStores = 0, spillLoads = 0;
        foreach (string line in log.Split('\n'))
        {
            if (Compiling().Match(line) is { Success: true } c)
            {
                name = c.Groups[1].Value;
                arch = c.Groups[2].Value;
                stack = spillStores = spillLoads = 0;
            }
            else if (Properties().Match(line) is { Success: true } p)
            {
                stack = Int(p.Groups[1]);
                spillStores = Int(p.Groups[2]);
                spillLoads = Int(p.Groups[3]);
            }
            else if (Used().Match(line) is { Success: true } u && name != null)
            {
                var smem = SharedMemory().Match(line);
                functions.Add(new PtxasFunction(name, arch!, Int(u.Groups[1]), stack, spillStores, spillLoads, smem.Success ? Int(smem.Groups[1]) : 0));
                name = null;
            }
        }
        return functions;
    }

    private static int Int(Group g) => int.Parse(g.Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"Compiling entry function '([^']+)' for '([^']+)'")]
    private static partial Regex Compiling();

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex Properties();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex Used();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex SharedMemory();
}
