using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Diffusion.Kernels.IO;

/// <summary>
/// A safetensors file opened for reading: <c>u64 little-endian N | N bytes of JSON header | data</c>.
/// The header is read and fully validated on <see cref="Open"/>; a tensor's bytes are read (pread, not a memory
/// map) only when it is asked for. Every caller copies the tensors out anyway, and a read of a file that shrank
/// meanwhile (copied over, <c>rsync --inplace</c>, a re-download) then ends early with a typed error, where a
/// memory map would fault the process. Reads may run concurrently; disposing while a read runs is not allowed.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private const string LfsPointerPrefix = "version https://git-lfs";

    /// <summary>Tensors are read in pieces of this size, so a conversion never needs a second full-size buffer.</summary>
    private const int ChunkBytes = 1 << 20;

    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;
    private readonly FileStream _stream;
    private readonly long _dataStart;
    private bool _disposed;

    private SafetensorsFile(string path, long fileSize, List<SafetensorsTensorInfo> tensors,
        Dictionary<string, string> metadata, FileStream stream, long dataStart)
    {
        Path = path;
        FileSize = fileSize;
        Tensors = tensors;
        Metadata = metadata;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        _stream = stream;
        _dataStart = dataStart;
    }

    public string Path { get; }

    /// <summary>The size when the file was opened, which the header was checked against.</summary>
    public long FileSize { get; }

    /// <summary>The tensors in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The header's optional <c>__metadata__</c> strings (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream stream;
        try
        {
            stream = InputFile.OpenRead(path);
        }
        catch (UnusableFileException e)
        {
            throw new SafetensorsFormatException(path, e.Problem, e);
        }

        try
        {
            long fileSize = stream.Length;
            var (headerLength, header) = ReadHeader(stream, fileSize, path);
            long dataStart = 8 + headerLength;
            var (tensors, metadata) = SafetensorsHeader.Parse(header, fileSize - dataStart, path);
            return new SafetensorsFile(path, fileSize, tensors, metadata, stream, dataStart);
        }
        catch (IOException e)
        {
            stream.Dispose();
            throw new SafetensorsFormatException(path, $"cannot be read: {e.Message}", e);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads the length prefix and the header bytes. The length is checked against the file size before any
    /// buffer is allocated, so a forged length cannot make us allocate more than the file holds.
    /// </summary>
    private static (long Length, byte[] Header) ReadHeader(FileStream stream, long fileSize, string path)
    {
        Span<byte> prefix = stackalloc byte[LfsPointerPrefix.Length];
        int got = stream.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
        if (got == prefix.Length && Encoding.ASCII.GetString(prefix) == LfsPointerPrefix)
            throw new SafetensorsFormatException(path,
                "is a Git LFS pointer, not the weights: the real file was not downloaded (run 'git lfs pull' in the model repository)");
        if (fileSize < 8)
            throw new SafetensorsFormatException(path, $"is {fileSize} bytes long, shorter than the 8-byte header length");

        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(prefix[..8]);
        if (length > SafetensorsHeader.MaxHeaderBytes)
            throw new SafetensorsFormatException(path, $"the header length {length} exceeds the {SafetensorsHeader.MaxHeaderBytes}-byte limit");
        if ((long)length > fileSize - 8)
            throw new SafetensorsFormatException(path, $"the header length {length} is larger than the rest of the file ({fileSize - 8} bytes); the file is truncated or not safetensors");

        var header = new byte[length];
        stream.Position = 8;
        stream.ReadExactly(header);
        return ((long)length, header);
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafetensorsTensorInfo Get(string name) =>
        _byName.TryGetValue(name, out var info)
            ? info
            : throw new SafetensorsFormatException(Path, $"has no tensor named '{name}'");

    /// <summary>Reads a tensor of any dtype converted to float32 (integers and booleans by value, F64 rounded).</summary>
    public float[] ReadFloat32(string name)
    {
        var info = Get(name);
        if (info.ElementCount > Array.MaxLength)
            throw new SafetensorsFormatException(Path, $"tensor '{SafetensorsHeader.Truncate(name)}' has {info.ElementCount} elements, more than one array can hold");
        var result = new float[info.ElementCount];
        int size = info.DType.ElementSize();
        int perChunk = ChunkBytes / size;
        // Sized to the tensor when it is smaller than a chunk: a 400-byte file must not cost a megabyte.
        byte[]? buffer = info.DType == SafetensorsDType.F32 ? null : ArrayPool<byte>.Shared.Rent((int)Math.Min(ChunkBytes, info.ByteLength));
        try
        {
            for (long first = 0; first < result.Length; first += perChunk)
            {
                int count = (int)Math.Min(perChunk, result.Length - first);
                var destination = result.AsSpan((int)first, count);
                long offset = info.DataOffset + first * size;
                if (buffer is null)
                {
                    // Stored float32 is already in machine order (little-endian hosts only), so it lands in place.
                    ReadExactly(info, offset, MemoryMarshal.AsBytes(destination));
                }
                else
                {
                    ReadExactly(info, offset, buffer.AsSpan(0, count * size));
                    ElementConversion.ToFloat32(buffer.AsSpan(0, count * size), info.DType, destination);
                }
            }
        }
        finally
        {
            if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
        }
        return result;
    }

    public HostTensor ReadTensor(string name) => new(Get(name).Shape, ReadFloat32(name));

    /// <summary>The tensor's bytes exactly as stored (little-endian, in its own dtype), for paths that keep half precision.</summary>
    public byte[] ReadRaw(string name)
    {
        var info = Get(name);
        if (info.ByteLength > Array.MaxLength)
            throw new SafetensorsFormatException(Path, $"tensor '{SafetensorsHeader.Truncate(name)}' has {info.ByteLength} bytes, more than one array can hold");
        var result = new byte[info.ByteLength];
        ReadExactly(info, info.DataOffset, result);
        return result;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> from the data section at <paramref name="offset"/>. The header proved
    /// these bytes lie within the file as it was opened; ending early means the file has shrunk since.
    /// </summary>
    private void ReadExactly(SafetensorsTensorInfo info, long offset, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long position = _dataStart + offset;
        try
        {
            while (!destination.IsEmpty)
            {
                int got = RandomAccess.Read(_stream.SafeFileHandle, destination, position);
                if (got == 0)
                {
                    long now = RandomAccess.GetLength(_stream.SafeFileHandle);
                    throw new SafetensorsFormatException(Path,
                        $"shrank to {now} bytes while being read (it had {FileSize} when opened, and tensor '{SafetensorsHeader.Truncate(info.Name)}' ends at byte {_dataStart + info.DataOffset + info.ByteLength}); was it replaced during the run?");
                }
                destination = destination[got..];
                position += got;
            }
        }
        catch (IOException e)
        {
            throw new SafetensorsFormatException(Path, $"cannot be read: {e.Message}", e);
        }
    }

    public override string ToString() => $"{Path} ({Tensors.Count} tensors)";

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stream.Dispose();
    }
}
