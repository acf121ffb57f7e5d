using BenchmarkDotNet.Running;
using Diffusion.Kernels.Bench;

if (args.Length > 0 && args[0] == "quick")
{
    QuickReport.Run(args.Length > 1 ? args[1] : "", args.Length > 2 ? int.Parse(args[2]) : 0);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, BenchConfig.Create());
