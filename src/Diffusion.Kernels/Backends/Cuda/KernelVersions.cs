namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// Which version of each kernel the backend launches (kernel-lab style: version 1 is the readable one, the
/// highest is the default). DIFFUSION_KERNEL_VERSION_&lt;op&gt;=N selects another, e.g. DIFFUSION_KERNEL_VERSION_conv2d=1.
/// </summary>
internal sealed record KernelVersions(int Conv2d, int GroupNorm, int Attention, int Linear)
{
    public static KernelVersions FromEnvironment() => From(Environment.GetEnvironmentVariable);

    public static KernelVersions From(Func<string, string?> environment) => new(
        Read(environment, "conv2d", 2),
        Read(environment, "group_norm", 2),
        Read(environment, "attention", 2),
        Read(environment, "linear", 2));

    private static int Read(Func<string, string?> environment, string op, int latest)
    {
        string variable = "DIFFUSION_KERNEL_VERSION_" + op;
        string? text = environment(variable);
        if (string.IsNullOrWhiteSpace(text)) return latest;
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v) && v >= 1 && v <= latest)
            return v;
        throw new DiffusionException($"{variable}={text} is not a version of kernels/{op}.cu (1 to {latest})");
    }
}
