using System.Runtime.CompilerServices;

namespace Diffusion.Kernels.IO;

/// <summary>
/// Conversions between stored element types and float32. Stored data is little-endian and may be unaligned
/// (a tensor can follow an odd-sized one), so everything is read with unaligned loads. The library only
/// runs on little-endian hosts, where the stored bytes are already in machine order.
/// </summary>
internal static unsafe class ElementConversion
{
    public static void ToFloat32(ReadOnlySpan<byte> stored, SafetensorsDType dtype, Span<float> destination)
    {
        if (stored.Length < (long)destination.Length * dtype.ElementSize())
            throw new ArgumentException($"{destination.Length} {dtype} values need {(long)destination.Length * dtype.ElementSize()} bytes, got {stored.Length}", nameof(stored));
        fixed (byte* source = stored) ToFloat32(source, dtype, destination);
    }

    private static void ToFloat32(byte* source, SafetensorsDType dtype, Span<float> destination)
    {
        int n = destination.Length;
        switch (dtype)
        {
            case SafetensorsDType.F32:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<float>(source + 4L * i);
                break;
            case SafetensorsDType.F16:
                for (int i = 0; i < n; i++) destination[i] = (float)Unsafe.ReadUnaligned<Half>(source + 2L * i);
                break;
            case SafetensorsDType.BF16:
                // bfloat16 is the upper half of a float32, so widening is exact.
                for (int i = 0; i < n; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)Unsafe.ReadUnaligned<ushort>(source + 2L * i) << 16);
                break;
            case SafetensorsDType.F64:
                for (int i = 0; i < n; i++) destination[i] = (float)Unsafe.ReadUnaligned<double>(source + 8L * i);
                break;
            case SafetensorsDType.BOOL:
                for (int i = 0; i < n; i++) destination[i] = source[i] != 0 ? 1f : 0f;
                break;
            case SafetensorsDType.U8:
                for (int i = 0; i < n; i++) destination[i] = source[i];
                break;
            case SafetensorsDType.I8:
                for (int i = 0; i < n; i++) destination[i] = (sbyte)source[i];
                break;
            case SafetensorsDType.I16:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<short>(source + 2L * i);
                break;
            case SafetensorsDType.U16:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<ushort>(source + 2L * i);
                break;
            case SafetensorsDType.I32:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<int>(source + 4L * i);
                break;
            case SafetensorsDType.U32:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<uint>(source + 4L * i);
                break;
            case SafetensorsDType.I64:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<long>(source + 8L * i);
                break;
            case SafetensorsDType.U64:
                for (int i = 0; i < n; i++) destination[i] = Unsafe.ReadUnaligned<ulong>(source + 8L * i);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    /// <summary>Writes float32 values as F32, F16 or BF16 little-endian bytes, rounding to nearest even.</summary>
    public static void FromFloat32(ReadOnlySpan<float> source, SafetensorsDType dtype, Span<byte> destination)
    {
        fixed (byte* d = destination)
        {
            switch (dtype)
            {
                case SafetensorsDType.F32:
                    for (int i = 0; i < source.Length; i++) Unsafe.WriteUnaligned(d + 4L * i, source[i]);
                    break;
                case SafetensorsDType.F16:
                    // .NET's float → Half conversion is IEEE round-to-nearest-even.
                    for (int i = 0; i < source.Length; i++) Unsafe.WriteUnaligned(d + 2L * i, (Half)source[i]);
                    break;
                case SafetensorsDType.BF16:
                    for (int i = 0; i < source.Length; i++) Unsafe.WriteUnaligned(d + 2L * i, ToBFloat16Bits(source[i]));
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "only F32, F16 and BF16 are written from float32");
            }
        }
    }

    /// <summary>float32 → bfloat16 bits, round-to-nearest-even; NaN stays a (quiet) NaN rather than rounding to infinity.</summary>
    public static ushort ToBFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }
}
