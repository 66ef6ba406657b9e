using Qimg.Block;
using Qimg.Copy;

namespace Qimg.Tests.Copy;

public class CopyOrderTests
{
    /// <summary>An in-memory node whose reads take a random time and whose writes are recorded in order.</summary>
    private sealed class RecordingNode : BlockNode
    {
        private readonly byte[] _data;
        private readonly int _seed;
        private readonly object _lock = new();
        private int _activeWrites;

        public RecordingNode(long length, bool fill, int seed)
            : base("memory", readOnly: false)
        {
            _data = new byte[length];
            _seed = seed;
            if (fill)
            {
                new Random(seed).NextBytes(_data);
            }
        }

        public List<long> Writes { get; } = [];

        public int MaxConcurrentWrites { get; private set; }

        public override string DriverName => "memory";

        public override long Length => _data.Length;

        protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            // Later requests often finish first.
            await Task.Delay(new Random(_seed ^ (int)(offset >> 9)).Next(0, 4), cancellationToken);
            _data.AsMemory((int)offset, buffer.Length).CopyTo(buffer);
        }

        protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                Writes.Add(offset);
                MaxConcurrentWrites = Math.Max(MaxConcurrentWrites, ++_activeWrites);
            }

            await Task.Delay(1, cancellationToken);
            data.CopyTo(_data.AsMemory((int)offset));
            lock (_lock)
            {
                _activeWrites--;
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(16)]
    public async Task WritesAreIssuedInOffsetOrderOneAtATime(int workers)
    {
        var source = new RecordingNode(48 << 20, fill: true, seed: workers);
        var target = new RecordingNode(48 << 20, fill: false, seed: 1);
        await CopyEngine.CopyAsync([new CopySource(source)], target, new CopyOptions { Workers = workers, TargetIsZero = true });
        Assert.Equal(target.Writes.OrderBy(o => o), target.Writes);
        Assert.Equal(1, target.MaxConcurrentWrites);
        Assert.Equal(24, target.Writes.Count);
    }

    [Fact]
    public async Task OutOfOrderWritesRunConcurrently()
    {
        var source = new RecordingNode(48 << 20, fill: true, seed: 3);
        var target = new RecordingNode(48 << 20, fill: false, seed: 1);
        await CopyEngine.CopyAsync([new CopySource(source)], target, new CopyOptions { Workers = 8, WriteInOrder = false, TargetIsZero = true });
        Assert.Equal(24, target.Writes.Count);
        Assert.True(target.MaxConcurrentWrites > 1);
    }
}
