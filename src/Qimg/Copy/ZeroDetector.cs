namespace Qimg.Copy;

/// <summary>
/// Finds runs of zero and non-zero 512-byte sectors in a buffer the way qemu-img convert does, so that qimg's targets
/// are exactly as sparse as qemu-img's: zero runs shorter than the minimum are kept as data, and the ends of data
/// runs are aligned so that writes do not need read-modify-write in the target.
/// </summary>
public static class ZeroDetector
{
    public const int SectorSize = 512;

    /// <summary>True when every byte of <paramref name="buffer"/> is zero (vectorized).</summary>
    public static bool IsZero(ReadOnlySpan<byte> buffer) => buffer.IndexOfAnyExcept((byte)0) < 0;

    /// <summary>
    /// Whether the first sector of <paramref name="buffer"/> holds data, and how many sectors from the start share that
    /// state (<paramref name="count"/>, at most <paramref name="sectors"/>). When the run changes state before the end,
    /// its end is moved to an <paramref name="alignment"/>-sector boundary: data runs grow up to it (the tail would be
    /// rewritten by a read-modify-write anyway), zero runs shrink down to it.
    /// </summary>
    public static bool IsAllocatedSectors(ReadOnlySpan<byte> buffer, int sectors, out int count, long firstSector, int alignment)
    {
        if (sectors <= 0)
        {
            count = 0;
            return false;
        }

        bool isZero = IsZero(buffer[..SectorSize]);
        int i;
        if (isZero)
        {
            // The run of zero sectors ends at the sector holding the first non-zero byte.
            int firstNonZero = buffer[..(sectors * SectorSize)].IndexOfAnyExcept((byte)0);
            i = firstNonZero < 0 ? sectors : firstNonZero / SectorSize;
        }
        else
        {
            i = 1;
            while (i < sectors && !IsZero(buffer.Slice(i * SectorSize, SectorSize)))
            {
                i++;
            }
        }

        if (i == sectors)
        {
            count = i;
            return !isZero;
        }

        int tail = (int)((firstSector + i) & (alignment - 1));
        if (tail != 0)
        {
            if (isZero && i <= tail)
            {
                // The next sector is data and will rewrite this short zero head anyway.
                isZero = false;
            }

            if (!isZero)
            {
                i = Math.Min(i + alignment - tail, sectors);
            }
            else
            {
                i -= tail;
            }
        }

        count = i;
        return !isZero;
    }

    /// <summary>
    /// Like <see cref="IsAllocatedSectors"/>, but when the buffer starts with data, zero runs shorter than
    /// <paramref name="minSectors"/> are absorbed into the data run, so small holes do not split writes.
    /// </summary>
    public static bool IsAllocatedSectorsMin(ReadOnlySpan<byte> buffer, int sectors, out int count, int minSectors, long firstSector, int alignment)
    {
        if (sectors < minSectors)
        {
            minSectors = sectors;
        }

        if (!IsAllocatedSectors(buffer, sectors, out count, firstSector, alignment))
        {
            return false;
        }

        int used = count;
        int checkedSectors = count;
        int remaining = sectors - count;
        long sector = firstSector + count;
        while (remaining > 0)
        {
            bool data = IsAllocatedSectors(buffer[(checkedSectors * SectorSize)..], remaining, out int run, sector, alignment);
            remaining -= run;
            sector += run;
            checkedSectors += run;
            if (data)
            {
                used = checkedSectors;
            }
            else if (run >= minSectors)
            {
                break;
            }
        }

        count = used;
        return true;
    }
}
