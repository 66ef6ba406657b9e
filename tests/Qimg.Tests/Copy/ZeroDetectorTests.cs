using Qimg.Copy;

namespace Qimg.Tests.Copy;

public class ZeroDetectorTests
{
    /// <summary>A sector-by-sector reading of qemu-img's is_allocated_sectors, to check the vectorized one against.</summary>
    private static bool Reference(byte[] buffer, int n, out int count, long firstSector, int alignment)
    {
        static bool SectorIsZero(byte[] b, int index) => b.AsSpan(index * 512, 512).IndexOfAnyExcept((byte)0) < 0;
        bool isZero = SectorIsZero(buffer, 0);
        int i = 1;
        while (i < n && SectorIsZero(buffer, i) == isZero)
        {
            i++;
        }

        if (i == n)
        {
            count = i;
            return !isZero;
        }

        int tail = (int)((firstSector + i) & (alignment - 1));
        if (tail != 0)
        {
            if (isZero && i <= tail)
            {
                isZero = false;
            }

            i = !isZero ? Math.Min(i + alignment - tail, n) : i - tail;
        }

        count = i;
        return !isZero;
    }

    [Fact]
    public void MatchesTheSectorBySectorDefinition()
    {
        var random = new Random(42);
        for (int round = 0; round < 2000; round++)
        {
            int n = random.Next(1, 40);
            byte[] buffer = new byte[n * 512];
            for (int s = 0; s < n; s++)
            {
                if (random.Next(3) == 0)
                {
                    buffer[s * 512 + random.Next(512)] = (byte)random.Next(1, 256);
                }
            }

            long first = random.Next(0, 64);
            int alignment = 1 << random.Next(0, 5);
            bool expected = Reference(buffer, n, out int expectedCount, first, alignment);
            bool actual = ZeroDetector.IsAllocatedSectors(buffer, n, out int actualCount, first, alignment);
            Assert.Equal((expected, expectedCount), (actual, actualCount));
        }
    }

    [Fact]
    public void SmallHolesInsideDataStayData()
    {
        // 8 data sectors, a 4-sector hole, 8 data sectors, then a 16-sector hole: with a minimum of 8 sectors the
        // short hole is absorbed, the long one ends the run, and the run's end is rounded up to the 8-sector alignment.
        byte[] buffer = new byte[36 * 512];
        buffer.AsSpan(0, 8 * 512).Fill(1);
        buffer.AsSpan(12 * 512, 8 * 512).Fill(1);
        Assert.True(ZeroDetector.IsAllocatedSectorsMin(buffer, 36, out int count, 8, 0, 8));
        Assert.Equal(24, count);
    }

    [Fact]
    public void LeadingZeroesAreAHole()
    {
        byte[] buffer = new byte[16 * 512];
        buffer[15 * 512] = 1;
        Assert.False(ZeroDetector.IsAllocatedSectorsMin(buffer, 16, out int count, 8, 0, 8));
        Assert.Equal(8, count);
    }
}
