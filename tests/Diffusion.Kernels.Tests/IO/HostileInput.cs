using System.Diagnostics;
using System.Text;
using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Tests.IO;

/// <summary>
/// Shared machinery of the hostile-input tests: deterministic mutations, and running a case under a time limit
/// while recording how it ended and how much it allocated.
/// </summary>
internal static class HostileInput
{
    /// <summary>Replacement values that have broken parsers before: wrong types, overflow, non-finite spellings.</summary>
    public static readonly string[] Tokens =
    [
        "-1", "0", "1", "-0", "0.5", "1e2", "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "\"NaN\"", "\"Infinity\"",
        "2147483647", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551616",
        "-9223372036854775808", "null", "true", "false", "[]", "{}", "[[]]", "\"\"", "\"x\"", "[1,2,3]", "[-1]",
        "[2147483647,2147483647]", "{\"a\":1}", "\"F32\"", "\"BF16\"", "\"F8_E5M2\"", "\"\\u0000\"", "\"\\ud800\"",
    ];

    public sealed record Outcome(string Class, long AllocatedBytes, TimeSpan Elapsed);

    /// <summary>
    /// Runs <paramref name="action"/> on a pool thread so a hang shows up as a timeout instead of stalling the run.
    /// Returns the outcome class: "ok", the expected exception's class, or "UNEXPECTED ..." / "HANG".
    /// </summary>
    public static Outcome Run(Func<string> action, Func<Exception, string?> classifyExpected, TimeSpan limit)
    {
        long allocated = 0;
        var clock = Stopwatch.StartNew();
        var task = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                return action();
            }
            catch (Exception e)
            {
                return classifyExpected(e) ?? $"UNEXPECTED {e.GetType().Name}: {e.Message}";
            }
            finally
            {
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            }
        });
        if (!task.Wait(limit)) return new Outcome("HANG", 0, clock.Elapsed);
        return new Outcome(task.Result, allocated, clock.Elapsed);
    }

    /// <summary>
    /// Writes a well-formed JSON object one string of <see cref="ConfigFiles.MaxConfigBytes"/> characters long, so
    /// the file is over the config limit however the limit is counted.
    /// </summary>
    public static void WriteOversizedConfig(string path)
    {
        using var file = File.Create(path);
        file.Write("{\"pad\": \""u8);
        var pad = new byte[ConfigFiles.MaxConfigBytes];
        Array.Fill(pad, (byte)'x');
        file.Write(pad);
        file.Write("\"}"u8);
    }

    public static byte[] FlipBits(byte[] source, Random random, int flips, int limit)
    {
        var copy = (byte[])source.Clone();
        for (int i = 0; i < flips; i++)
        {
            int at = random.Next(Math.Min(limit, copy.Length));
            copy[at] ^= (byte)(1 << random.Next(8));
        }
        return copy;
    }

    /// <summary>One textual edit of JSON: swap a value for a token, delete, insert, or duplicate a span.</summary>
    public static string EditJson(string json, Random random)
    {
        switch (random.Next(5))
        {
            case 0:
            case 1:
            {
                // Replace one scalar value (a number, string, or literal following ':' , ',' or '[') with a token.
                var starts = new List<int>();
                for (int i = 0; i < json.Length - 1; i++)
                {
                    if (json[i] is ':' or '[' or ',') starts.Add(i + 1);
                }
                if (starts.Count == 0) return json;
                int start = starts[random.Next(starts.Count)];
                while (start < json.Length && json[start] == ' ') start++;
                int end = ScalarEnd(json, start);
                return json[..start] + Tokens[random.Next(Tokens.Length)] + json[end..];
            }
            case 2:
            {
                int at = random.Next(json.Length);
                return json.Remove(at, Math.Min(json.Length - at, 1 + random.Next(4)));
            }
            case 3:
            {
                const string alphabet = "{}[]:,\"-0123456789e.\\ aNtfn";
                return json.Insert(random.Next(json.Length + 1), alphabet[random.Next(alphabet.Length)].ToString());
            }
            default:
            {
                int from = random.Next(json.Length);
                int length = Math.Min(json.Length - from, 1 + random.Next(40));
                return json.Insert(random.Next(json.Length + 1), json.Substring(from, length));
            }
        }
    }

    private static int ScalarEnd(string json, int start)
    {
        if (start >= json.Length) return start;
        if (json[start] == '"')
        {
            int close = json.IndexOf('"', start + 1);
            return close < 0 ? json.Length : close + 1;
        }
        int end = start;
        while (end < json.Length && json[end] is not (',' or '}' or ']')) end++;
        return end;
    }

    public static string Nested(int depth, string open = "[", string close = "]", string inner = "1")
    {
        var builder = new StringBuilder(depth * (open.Length + close.Length) + inner.Length);
        for (int i = 0; i < depth; i++) builder.Append(open);
        builder.Append(inner);
        for (int i = 0; i < depth; i++) builder.Append(close);
        return builder.ToString();
    }
}
