using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// The numbers diffusers publishes for its own pipeline: tests/pipelines/ddim/test_ddim.py::test_inference runs
/// DDIMPipeline(unet, DDIMScheduler()) for 2 steps with generator=torch.manual_seed(0) and expects the last 3×3
/// pixels of the last channel of the image (x/2 + 0.5, clipped) to be this slice within 1e-3. The dummy U-Net is
/// the one torch initialises after torch.manual_seed(0), stored by weights/make_goldens.py. Nothing of ours is in
/// the expected values: the seed alone has to give diffusers' noise for the slice to match.
/// </summary>
public class DiffusersPipelineTests
{
    private static readonly double[] DdimTestSlice = [0.0, 9.979e-01, 0.0, 9.999e-01, 9.986e-01, 9.991e-01, 7.106e-04, 0.0, 0.0];

    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void Ddim_from_seed_0_gives_the_slice_diffusers_test_expects(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        var config = UNet2DConfig.Load(Path.Combine(RepositoryPaths.Goldens, "diffusers_ddim_test_unet_config.json"));
        using var file = SafetensorsFile.Open(Path.Combine(RepositoryPaths.Goldens, "diffusers_ddim_test_unet.safetensors"));
        var weights = file.Tensors.ToDictionary(t => t.Name, t => file.ReadTensor(t.Name));
        using var unet = UNet2D.Create(config, weights, backend);

        var image = Pipeline.Generate(new GenerateOptions { Model = unet, Sampler = SamplerKind.Ddim, Steps = 2, Seed = 0 },
            cancellationToken: TestContext.Current.CancellationToken);

        image.Shape.Should().Equal(1, 3, 8, 8);
        var slice = new List<double>();
        for (int y = 5; y < 8; y++)
            for (int x = 5; x < 8; x++)
                slice.Add(Math.Clamp(image.Data[(2 * 8 + y) * 8 + x] / 2.0 + 0.5, 0, 1));
        for (int i = 0; i < 9; i++)
            slice[i].Should().BeApproximately(DdimTestSlice[i], 1e-3, $"slice element {i}");
    }
}
