namespace Diffusion.Cli;

/// <summary>Process exit codes; each failure class has its own so scripts can react without parsing text.</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Internal = 1;
    public const int Usage = 2;
    public const int BadModel = 3;
    public const int BadInput = 4;
    public const int OutputExists = 5;
    public const int OutOfMemory = 6;
    public const int NonFinite = 7;
    public const int DeviceUnavailable = 8;
    public const int OutputUnwritable = 9;
    public const int Cancelled = 130;
}
