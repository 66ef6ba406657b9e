using System.Buffers;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Reads many cluster-sized tables (L2 tables, refcount blocks) with few large reads: the offsets are sorted, tables
/// that lie close together are read in one request (gaps up to <see cref="MaxGap"/> are read and dropped), and each
/// table is copied to its slot. The check reads all of an image's metadata this way instead of one small read per table.
/// </summary>
internal static class Qcow2TableReader
{
    /// <summary>How many bytes of tables one batch should hold at most (callers size their batches with it).</summary>
    public const int MaxBatchBytes = 16 << 20;

    /// <summary>Largest gap between two tables that is read through rather than split into two requests.</summary>
    private const int MaxGap = 32 << 10;

    /// <summary>Largest single request.</summary>
    private const int MaxRun = 4 << 20;

    /// <summary>How many tables of <paramref name="tableSize"/> bytes go into one batch.</summary>
    public static int BatchCount(int tableSize) => Math.Max(1, MaxBatchBytes / tableSize);

    /// <summary>
    /// Reads the table at <c>offsets[i]</c> (<paramref name="tableSize"/> bytes, any alignment; parts past the end of the
    /// file read as zero) into <c>buffer[i * tableSize ..]</c>.
    /// </summary>
    /// <returns>Null when everything was read; otherwise, per table, the read failure (null for the tables that were read).</returns>
    public static async ValueTask<Exception?[]?> ReadAsync(BlockNode file, long[] offsets, int count, int tableSize, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (count == 0)
        {
            return null;
        }

        int[] order = ArrayPool<int>.Shared.Rent(count);
        Exception?[]? failures = null;
        try
        {
            for (int i = 0; i < count; i++)
            {
                order[i] = i;
            }

            Array.Sort(order, 0, count, Comparer<int>.Create((a, b) => offsets[a].CompareTo(offsets[b])));
            int k = 0;
            while (k < count)
            {
                long runStart = offsets[order[k]];
                long runEnd = runStart + tableSize;
                int last = k;
                while (last + 1 < count)
                {
                    long next = offsets[order[last + 1]];
                    long nextEnd = Math.Max(runEnd, next + tableSize);
                    if (next > runEnd + MaxGap || nextEnd - runStart > MaxRun)
                    {
                        break;
                    }

                    runEnd = nextEnd;
                    last++;
                }

                int length = (int)(runEnd - runStart);
                byte[] run = ArrayPool<byte>.Shared.Rent(length);
                try
                {
                    await file.ReadAsync(runStart, run.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                    for (int j = k; j <= last; j++)
                    {
                        int slot = order[j];
                        run.AsSpan((int)(offsets[slot] - runStart), tableSize).CopyTo(buffer.Span.Slice(slot * tableSize, tableSize));
                    }
                }
                catch (IOException e)
                {
                    failures ??= new Exception?[count];
                    for (int j = k; j <= last; j++)
                    {
                        failures[order[j]] = e;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(run);
                }

                k = last + 1;
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(order);
        }

        return failures;
    }
}
