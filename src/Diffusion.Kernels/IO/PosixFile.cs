using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Diffusion.Kernels.IO;

/// <summary>What a path names, as stat(2) reports it.</summary>
public enum FileKind
{
    Missing,
    Regular,
    Directory,
    SymbolicLink,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,
}

/// <summary>
/// The two things .NET cannot do on its own: open a path without blocking (a FIFO's open(2) waits for a writer,
/// and no signal handler runs while it does) and tell a FIFO or device node from a regular file. Linux only,
/// through glibc's open and statx, whose struct layout is the same on every Linux architecture (that is why
/// statx, not fstat). Elsewhere the managed fallbacks tell files from folders, and opening is .NET's own.
/// </summary>
public static partial class PosixFile
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const int OpenReadOnly = 0;
    private const int OpenNoCtty = 0x100;
    private const int OpenNonBlock = 0x800;
    private const int OpenCloseOnExec = 0x80000;
    private const int StatxModeOffset = 28;
    private const int StatxSize = 256;

    internal static bool Supported => OperatingSystem.IsLinux();

    /// <summary>The kind of <paramref name="path"/>; a symbolic link is followed unless <paramref name="followLinks"/> is false.</summary>
    public static FileKind KindOf(string path, bool followLinks)
    {
        if (!Supported)
        {
            if (!followLinks && new FileInfo(path).LinkTarget is not null) return FileKind.SymbolicLink;
            return Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;
        }
        Span<byte> buffer = stackalloc byte[StatxSize];
        int result = Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType, ref MemoryMarshal.GetReference(buffer));
        return result == 0 ? KindOfMode(BitConverter.ToUInt16(buffer[StatxModeOffset..])) : FileKind.Missing;
    }

    /// <summary>The kind of an open file.</summary>
    internal static FileKind KindOf(SafeFileHandle handle)
    {
        if (!Supported) return FileKind.Regular;
        Span<byte> buffer = stackalloc byte[StatxSize];
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            if (Statx(fd, "", AtEmptyPath, StatxType, ref MemoryMarshal.GetReference(buffer)) != 0)
                throw new IOException(Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError()));
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
        return KindOfMode(BitConverter.ToUInt16(buffer[StatxModeOffset..]));
    }

    /// <summary>
    /// open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC): returns at once for a FIFO without a writer, and
    /// a terminal named as an input never becomes our controlling terminal. Null with the errno's text on failure.
    /// </summary>
    internal static SafeFileHandle? OpenNonBlocking(string path, out int errno, out string error)
    {
        int fd = Open(path, OpenReadOnly | OpenNonBlock | OpenNoCtty | OpenCloseOnExec);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            error = Marshal.GetPInvokeErrorMessage(errno);
            return null;
        }
        errno = 0;
        error = "";
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    internal const int NoSuchFile = 2;
    internal const int TooManyLinks = 40;

    private static FileKind KindOfMode(ushort mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0xA000 => FileKind.SymbolicLink,
        0x1000 => FileKind.Fifo,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        _ => FileKind.Socket,
    };

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Statx(int directory, string path, int flags, uint mask, ref byte buffer);
}
