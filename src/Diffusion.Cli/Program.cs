using System.CommandLine;
using Diffusion.Cli;

var root = new RootCommand("diffuse: a DDPM U-Net image generator with hand-written CPU and CUDA kernels.");
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(UnetCommand.Create());
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return await root.Parse(args).InvokeAsync();
