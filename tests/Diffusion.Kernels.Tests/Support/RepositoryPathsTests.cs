using FluentAssertions;

namespace Diffusion.Kernels.Tests.Support;

public class RepositoryPathsTests
{
    [Fact]
    public void Root_holds_the_solution() =>
        File.Exists(Path.Combine(RepositoryPaths.Root, "Diffusion.Kernels.sln")).Should().BeTrue();
}
