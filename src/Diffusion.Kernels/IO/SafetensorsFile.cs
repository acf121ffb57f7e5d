using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;

namespace Diffusion.Kernels.IO;

/// <summary>
/// A safetensors file opened for reading: <c>u64 little-endian N | N bytes of JSON header | data</c>.
/// The header is read and fully validated on <see cref="Open"/>; tensor data stays in a read-only memory map
/// and is copied out only when a tensor is read, so opening a multi-gigabyte checkpoint costs no copy.
/// Reads may run concurrently; disposing while a read runs is not allowed.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private const string LfsPointerPrefix = "version https://git-lfs";

    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _data;
    private bool _disposed;

    private SafetensorsFile(string path, long fileSize, List<SafetensorsTensorInfo> tensors,
        Dictionary<string, string> metadata, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* data)
    {
        Path = path;
        FileSize = fileSize;
        Tensors = tensors;
        Metadata = metadata;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        _map = map;
        _view = view;
        _data = data;
    }

    public string Path { get; }

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
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new SafetensorsFormatException(path, $"cannot be opened: {e.Message}", e);
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            long fileSize = stream.Length;
            var (headerLength, header) = ReadHeader(stream, fileSize, path);
            long dataStart = 8 + headerLength;
            var (tensors, metadata) = SafetensorsHeader.Parse(header, fileSize - dataStart, path);

            byte* data = null;
            if (fileSize > dataStart)
            {
                map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
                view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                byte* basePointer = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
                data = basePointer + view.PointerOffset + dataStart;
            }
            else
            {
                stream.Dispose();
            }
            return new SafetensorsFile(path, fileSize, tensors, metadata, map, view, data);
        }
        catch (IOException e)
        {
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw new SafetensorsFormatException(path, $"cannot be read: {e.Message}", e);
        }
        catch
        {
            view?.Dispose();
            map?.Dispose();
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
            throw new SafetensorsFormatException(Path, $"tensor '{name}' has {info.ElementCount} elements, more than one array can hold");
        var result = new float[info.ElementCount];
        ElementConversion.ToFloat32(DataPointer(info), info.DType, result);
        return result;
    }

    public HostTensor ReadTensor(string name) => new(Get(name).Shape, ReadFloat32(name));

    /// <summary>The tensor's bytes exactly as stored (little-endian, in its own dtype), for paths that keep half precision.</summary>
    public byte[] ReadRaw(string name)
    {
        var info = Get(name);
        if (info.ByteLength > Array.MaxLength)
            throw new SafetensorsFormatException(Path, $"tensor '{name}' has {info.ByteLength} bytes, more than one array can hold");
        var result = new byte[info.ByteLength];
        new ReadOnlySpan<byte>(DataPointer(info), result.Length).CopyTo(result);
        return result;
    }

    private byte* DataPointer(SafetensorsTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Zero-length tensors may sit at the end of an empty data section, where nothing is mapped.
        return info.ByteLength == 0 ? null : _data + info.DataOffset;
    }

    public override string ToString() => $"{Path} ({Tensors.Count} tensors)";

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
