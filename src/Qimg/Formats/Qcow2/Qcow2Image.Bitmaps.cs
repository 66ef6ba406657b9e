using System.Text;
using Qimg.Block;
using Qimg.Diagnostics;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Persistent dirty bitmaps (QEMU's <c>qcow2-bitmap.c</c> lifecycle): loaded on open, marked in use in place when the
/// image is writable, tracked by writes, stored in new clusters on close; added and removed on request.
/// </summary>
public sealed partial class Qcow2Image : IPersistentBitmapHost
{
    /// <summary>The attached bitmaps, oldest first (QEMU lists them newest first); replaced, never mutated.</summary>
    private DirtyBitmap[] _dirtyBitmaps = [];

    private bool _bitmapDataMissing;
    private string? _nodeName;

    public bool SupportsPersistentBitmaps => _header.Version >= 3;

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The image was opened for metadata only (bitmap data is not loaded then).</exception>
    public IReadOnlyList<DirtyBitmap> DirtyBitmaps
    {
        get
        {
            ThrowIfDisposed();
            if (_bitmapDataMissing)
            {
                throw new InvalidOperationException($"'{FileName}' was opened for metadata only; its bitmaps are not loaded");
            }

            DirtyBitmap[] bitmaps = Volatile.Read(ref _dirtyBitmaps);
            var list = new DirtyBitmap[bitmaps.Length];
            for (int i = 0; i < bitmaps.Length; i++)
            {
                list[i] = bitmaps[bitmaps.Length - 1 - i];
            }

            return list;
        }
    }

    /// <summary>
    /// The node name QEMU's messages quote: an anonymous node's generated name ("#block" + a counter + two random
    /// digits, as QEMU's id_generate; the image is the second node qemu-img creates).
    /// </summary>
    private string NodeName => _nodeName ??= "#block1" + Random.Shared.Next(100).ToString("D2", System.Globalization.CultureInfo.InvariantCulture);

    // ------------------------------------------------------------ open

    /// <summary>
    /// The bitmap part of QEMU's qcow2_do_open: clears unknown auto-clear bits and drops an ignored bitmaps extension on a
    /// writable image, then loads every bitmap in the directory (qcow2_load_dirty_bitmaps): an in-use one becomes an
    /// inconsistent bitmap without data; the others get their table checked and their data read, and on a writable image
    /// are marked in use in the directory, in place. The header is written when needed.
    /// </summary>
    /// <param name="loadData">Read the bitmap data (false for metadata-only opens, which only list the bitmaps).</param>
    /// <exception cref="InvalidDataException">A bitmap cannot be loaded, or the directory cannot be updated (QEMU's messages).</exception>
    private async ValueTask OpenBitmapsAsync(bool loadData, CancellationToken cancellationToken)
    {
        bool canWrite = !IsReadOnly;
        bool updateHeader = canWrite
            && (_header.HasIgnoredBitmapsExtension || (_header.AutoclearFeatures & ~Qcow2Layout.AutoclearKnownMask) != 0);
        if (updateHeader)
        {
            _header.AutoclearFeatures &= Qcow2Layout.AutoclearKnownMask;
        }

        bool headerUpdated = false;
        if (_bitmaps.Count > 0)
        {
            int clusterSize = _header.ClusterSize;
            var loaded = new List<DirtyBitmap>(_bitmaps.Count);
            var entries = new List<Qcow2Bitmap>(_bitmaps);
            bool needsUpdate = false;
            for (int i = 0; i < entries.Count; i++)
            {
                Qcow2Bitmap entry = entries[i];
                if (loaded.Exists(b => b.Name == entry.Name))
                {
                    throw new InvalidDataException($"Bitmap already exists: {entry.Name}");
                }

                var bitmap = new DirtyBitmap(entry.Name, entry.GranularityBits, Length);
                if (entry.IsInUse)
                {
                    // Data is unusable: skip loading it.
                    bitmap.IsInconsistent = true;
                    bitmap.IsEnabled = false;
                }
                else
                {
                    ulong[] table;
                    try
                    {
                        table = await Qcow2Bitmaps.ReadTableAsync(File, entry.TableOffset, entry.TableSize, clusterSize, cancellationToken).ConfigureAwait(false);
                    }
                    catch (IOException e)
                    {
                        throw new InvalidDataException($"Could not read bitmap_table table from image for bitmap '{entry.Name}': {ErrorText.Describe(e)}", e);
                    }

                    long needed = Qcow2Bitmaps.TableSizeFor(bitmap, clusterSize);
                    if (needed != entry.TableSize || needed > Qcow2Bitmaps.MaxTableSize)
                    {
                        throw new InvalidDataException($"Could not read bitmap '{entry.Name}' from image: Invalid argument");
                    }

                    if (loadData)
                    {
                        try
                        {
                            await Qcow2Bitmaps.ReadDataAsync(File, table, bitmap, clusterSize, cancellationToken).ConfigureAwait(false);
                        }
                        catch (IOException e)
                        {
                            throw new InvalidDataException($"Could not read bitmap '{entry.Name}' from image: {ErrorText.Describe(e)}", e);
                        }
                    }

                    entries[i] = entry with { Flags = entry.Flags | Qcow2Bitmap.FlagInUse };
                    needsUpdate = true;
                }

                if ((entry.Flags & Qcow2Bitmap.FlagAuto) == 0)
                {
                    bitmap.IsEnabled = false;
                }

                bitmap.IsReadOnly = !canWrite;
                loaded.Add(bitmap);
            }

            if (needsUpdate && canWrite)
            {
                try
                {
                    await UpdateDirectoryInPlaceAsync(entries, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    throw new InvalidDataException($"Can't update bitmap directory: {ErrorText.Describe(e)}", e);
                }

                headerUpdated = true;
            }

            _bitmapDataMissing = !loadData;
            _dirtyBitmaps = [.. loaded];
        }

        if (updateHeader && !headerUpdated)
        {
            try
            {
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new InvalidDataException($"Could not update qcow2 header: {ErrorText.Describe(e)}", e);
            }
        }
    }

    /// <summary>
    /// Rewrites the directory in place with new flags (QEMU's update_ext_header_and_dir_in_place): the "bitmaps"
    /// auto-clear bit is cleared (durably) first, so that a crash in between leaves bitmaps QEMU drops rather than a torn
    /// directory it trusts; then the directory is written and the bit set again.
    /// </summary>
    /// <exception cref="IOException">EINVAL: the directory does not fit its old place, or an I/O error.</exception>
    private async ValueTask UpdateDirectoryInPlaceAsync(List<Qcow2Bitmap> entries, CancellationToken cancellationToken)
    {
        if ((_header.AutoclearFeatures & Qcow2Layout.AutoclearBitmaps) == 0 || entries.Count == 0 || entries.Count != _header.BitmapCount)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
        }

        _header.AutoclearFeatures &= ~Qcow2Layout.AutoclearBitmaps;
        await UpdateHeaderSyncAsync(cancellationToken).ConfigureAwait(false);

        // From here on, a failure leaves the auto-clear bit cleared: QEMU then drops the bitmaps and check -r frees them.
        byte[] directory = Qcow2Bitmaps.BuildDirectory(entries, _header.ClusterSize, Length);
        if ((ulong)directory.Length != _header.BitmapDirectorySize || _header.BitmapDirectoryOffset == 0)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
        }

        CheckOverlap((long)_header.BitmapDirectoryOffset, directory.Length, Overlap.None);
        await File.WriteAsync((long)_header.BitmapDirectoryOffset, directory, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        await UpdateHeaderSyncAsync(cancellationToken).ConfigureAwait(false);
        _header.AutoclearFeatures |= Qcow2Layout.AutoclearBitmaps;
        await UpdateHeaderSyncAsync(cancellationToken).ConfigureAwait(false);
        ReplaceDirectoryEntries(entries);
    }

    /// <summary>QEMU's update_header_sync: the header, then a flush of the file.</summary>
    private async ValueTask UpdateHeaderSyncAsync(CancellationToken cancellationToken)
    {
        await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
        await FlushFileAsync(cancellationToken).ConfigureAwait(false);
    }

    private void ReplaceDirectoryEntries(List<Qcow2Bitmap> entries)
    {
        _bitmaps.Clear();
        _bitmaps.AddRange(entries);
    }

    // ------------------------------------------------------------ tracking

    /// <summary>Sets the bits of the enabled bitmaps for a written, zeroed or discarded range (QEMU's bdrv_set_dirty).</summary>
    private void MarkBitmapsDirty(long offset, long length)
    {
        foreach (DirtyBitmap bitmap in Volatile.Read(ref _dirtyBitmaps))
        {
            if (bitmap.IsEnabled)
            {
                bitmap.SetDirty(offset, length);
            }
        }
    }

    // ------------------------------------------------------------ add and remove

    /// <inheritdoc/>
    public async ValueTask<DirtyBitmap> AddDirtyBitmapAsync(string name, int granularityBits, bool disabled, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(granularityBits, 9);
        ThrowIfFailed();
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DirtyBitmap[] attached = _dirtyBitmaps;
            if (Array.Exists(attached, b => b.Name == name))
            {
                throw new InvalidOperationException($"Bitmap already exists: {name}");
            }

            string? error = null;
            if (_header.Version < 3)
            {
                error = "Cannot store dirty bitmaps in qcow2 v2 files";
            }
            else
            {
                error = CheckBitmapConstraints(name, granularityBits);
                if (error is null)
                {
                    long count = 1;
                    long directorySize = Qcow2Bitmaps.EntrySize(Encoding.UTF8.GetByteCount(name));
                    foreach (DirtyBitmap bitmap in attached)
                    {
                        if (bitmap.IsPersistent)
                        {
                            count++;
                            directorySize += Qcow2Bitmaps.EntrySize(Encoding.UTF8.GetByteCount(bitmap.Name));
                        }
                    }

                    if (count > Qcow2Layout.MaxBitmaps)
                    {
                        error = "Maximum number of persistent bitmaps is already reached";
                    }
                    else if (directorySize > Qcow2Layout.MaxBitmapDirectoryBytes)
                    {
                        error = "Not enough space in the bitmap directory";
                    }
                }
            }

            if (error is not null)
            {
                throw new InvalidOperationException($"Can't make bitmap '{name}' persistent in '{NodeName}': {error}");
            }

            if (IsReadOnly)
            {
                // QEMU would add it and then fail to store it on close ("No write access").
                throw new InvalidOperationException("No write access");
            }

            var added = new DirtyBitmap(name, granularityBits, Length) { IsEnabled = !disabled };
            Volatile.Write(ref _dirtyBitmaps, [.. attached, added]);
            return added;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc/>
    public async ValueTask RemoveDirtyBitmapAsync(DirtyBitmap bitmap, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        ThrowIfFailed();
        if (IsReadOnly)
        {
            throw new InvalidOperationException("No write access");
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DirtyBitmap[] attached = _dirtyBitmaps;
            if (Array.IndexOf(attached, bitmap) < 0)
            {
                throw new ArgumentException($"Dirty bitmap '{bitmap.Name}' not found", nameof(bitmap));
            }

            // QEMU's qcow2_co_remove_persistent_dirty_bitmap: a bitmap that is not in the directory is no error.
            int index = bitmap.IsPersistent ? _bitmaps.FindIndex(e => e.Name == bitmap.Name) : -1;
            if (index >= 0)
            {
                Qcow2Bitmap removed = _bitmaps[index];
                var entries = new List<Qcow2Bitmap>(_bitmaps);
                entries.RemoveAt(index);
                try
                {
                    await UpdateDirectoryAsync(entries, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    throw new IOException($"Failed to update bitmap extension: {ErrorText.Describe(e)}", e);
                }

                await FreeBitmapClustersAsync(removed.TableOffset, removed.TableSize, cancellationToken).ConfigureAwait(false);
            }

            Volatile.Write(ref _dirtyBitmaps, Array.FindAll(attached, b => b != bitmap));
        }
        catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
        {
            await SignalCorruptionAsync(e).ConfigureAwait(false);
            throw;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// QEMU's check_constraints_on_bitmap: the granularity is within 512 B - 2 GiB, the bitmap data fits QEMU's limits
    /// for the image size, and the name has at most 1023 bytes. Returns the error, or null.
    /// </summary>
    private string? CheckBitmapConstraints(string name, int granularityBits)
    {
        if (granularityBits > Qcow2Bitmaps.MaxGranularityBits)
        {
            return $"Granularity exceeds maximum ({1UL << Qcow2Bitmaps.MaxGranularityBits} bytes)";
        }

        if (granularityBits < Qcow2Bitmaps.MinGranularityBits)
        {
            return $"Granularity is under minimum ({1UL << Qcow2Bitmaps.MinGranularityBits} bytes)";
        }

        ulong bytes = ((ulong)DirtyBitmap.BitsFor(Length, granularityBits) + 7) / 8;
        if (bytes > Qcow2Bitmaps.MaxPhysicalSize || bytes > (ulong)Qcow2Bitmaps.MaxTableSize * (ulong)_header.ClusterSize)
        {
            return "Too much space will be occupied by the bitmap. Use larger granularity";
        }

        if (Encoding.UTF8.GetByteCount(name) > Qcow2Bitmaps.MaxNameSize)
        {
            return $"Name length exceeds maximum ({Qcow2Bitmaps.MaxNameSize} characters)";
        }

        return null;
    }

    // ------------------------------------------------------------ resize

    /// <summary>
    /// QEMU's qcow2_truncate_bitmaps_check: every stored bitmap must be loaded, and none may be inconsistent or read-only.
    /// </summary>
    /// <exception cref="NotSupportedException">A bitmap prevents the resize (QEMU's message and hint).</exception>
    private void CheckBitmapsForResize()
    {
        DirtyBitmap[] attached = _dirtyBitmaps;
        foreach (Qcow2Bitmap entry in _bitmaps)
        {
            DirtyBitmap? bitmap = Array.Find(attached, b => b.Name == entry.Name);
            if (bitmap is null || _bitmapDataMissing)
            {
                throw new NotSupportedException("Cannot resize qcow2 with persistent bitmaps that were not loaded into memory");
            }

            if (bitmap.IsReadOnly)
            {
                throw new NotSupportedException($"Bitmap '{bitmap.Name}' is readonly and cannot be modified");
            }

            if (bitmap.IsInconsistent)
            {
                throw new NotSupportedException($"Bitmap '{bitmap.Name}' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk");
            }
        }
    }

    /// <summary>Resizes every bitmap after a successful resize (QEMU's bdrv_dirty_bitmap_truncate).</summary>
    private void TruncateBitmaps(long length)
    {
        foreach (DirtyBitmap bitmap in _dirtyBitmaps)
        {
            bitmap.Truncate(length);
        }
    }

    // ------------------------------------------------------------ store on close

    /// <summary>
    /// Stores the bitmaps on close (QEMU's qcow2_store_persistent_dirty_bitmaps from qcow2_inactivate). A failure is
    /// reported ("Lost persistent bitmaps during inactivation of node …") and returned as false: QEMU then leaves the
    /// image marked dirty.
    /// </summary>
    private async ValueTask<bool> StoreBitmapsOnCloseAsync(CancellationToken cancellationToken)
    {
        try
        {
            await StoreBitmapsAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or InvalidDataException)
        {
            if (e is InvalidDataException && Qcow2ThrowHelper.IsCorruption(e))
            {
                await SignalCorruptionAsync((InvalidDataException)e).ConfigureAwait(false);
            }

            // An error_report line: QEMU prints it with the program name, which library texts spell "qemu-img" (a front end
            // shows its own name; see ErrorText).
            _message?.Invoke($"qemu-img: Lost persistent bitmaps during inactivation of node '{NodeName}': {ErrorText.Describe(e)}");
            return false;
        }
    }

    /// <summary>
    /// Writes every consistent persistent bitmap to new clusters and a new directory with "in use" cleared, then frees
    /// the clusters of the versions loaded on open. Bitmaps are matched to directory entries by name; new ones are
    /// appended in QEMU's list order (newest first).
    /// </summary>
    private async ValueTask StoreBitmapsAsync(CancellationToken cancellationToken)
    {
        DirtyBitmap[] attached = _dirtyBitmaps;
        if (IsReadOnly || attached.Length == 0)
        {
            return;
        }

        var entries = new List<Qcow2Bitmap>(_bitmaps);
        var bitmaps = new DirtyBitmap?[entries.Count];
        var newBitmaps = new List<DirtyBitmap?>();
        var dropTables = new List<(ulong Offset, uint Size)>();
        long count = _header.BitmapCount;
        long directorySize = (long)_header.BitmapDirectorySize;
        bool needWrite = false;
        for (int i = attached.Length - 1; i >= 0; i--)
        {
            DirtyBitmap bitmap = attached[i];
            if (!bitmap.IsPersistent || bitmap.IsInconsistent || bitmap.IsReadOnly)
            {
                continue;
            }

            needWrite = true;
            if (CheckBitmapConstraints(bitmap.Name, bitmap.GranularityBits) is string error)
            {
                throw new InvalidOperationException($"Bitmap '{bitmap.Name}' doesn't satisfy the constraints: {error}");
            }

            uint flags = bitmap.IsEnabled ? Qcow2Bitmap.FlagAuto : 0;
            int index = entries.FindIndex(e => e.Name == bitmap.Name);
            if (index < 0)
            {
                if (++count > Qcow2Layout.MaxBitmaps)
                {
                    throw new InvalidOperationException("Too many persistent bitmaps");
                }

                directorySize += Qcow2Bitmaps.EntrySize(Encoding.UTF8.GetByteCount(bitmap.Name));
                if (directorySize > Qcow2Layout.MaxBitmapDirectoryBytes)
                {
                    throw new InvalidOperationException("Bitmap directory is too large");
                }

                entries.Add(new Qcow2Bitmap(bitmap.Name, bitmap.GranularityBits, flags, 0, 0));
                newBitmaps.Add(bitmap);
            }
            else
            {
                Qcow2Bitmap old = entries[index];
                if (!old.IsInUse)
                {
                    throw new InvalidOperationException($"Bitmap '{bitmap.Name}' already exists in the image");
                }

                dropTables.Add((old.TableOffset, old.TableSize));
                entries[index] = new Qcow2Bitmap(bitmap.Name, bitmap.GranularityBits, flags, 0, 0);
                bitmaps[index] = bitmap;
            }
        }

        if (!needWrite)
        {
            return;
        }

        DirtyBitmap?[] all = [.. bitmaps, .. newBitmaps];
        var stored = new List<int>();
        try
        {
            for (int i = 0; i < entries.Count; i++)
            {
                if (all[i] is DirtyBitmap bitmap)
                {
                    (long tableOffset, long tableSize) = await StoreBitmapAsync(bitmap, cancellationToken).ConfigureAwait(false);
                    entries[i] = entries[i] with { TableOffset = (ulong)tableOffset, TableSize = (uint)tableSize };
                    stored.Add(i);
                }
            }

            try
            {
                await UpdateDirectoryAsync(entries, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new IOException($"Failed to update bitmap extension: {ErrorText.Describe(e)}", e);
            }
        }
        catch
        {
            foreach (int i in stored)
            {
                await FreeBitmapClustersAsync(entries[i].TableOffset, entries[i].TableSize, CancellationToken.None).ConfigureAwait(false);
            }

            throw;
        }

        // The directory now points at the new versions: the old ones can go.
        foreach ((ulong offset, uint size) in dropTables)
        {
            await FreeBitmapClustersAsync(offset, size, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Writes one bitmap (QEMU's store_bitmap and store_bitmap_data): a cluster is allocated and written for every
    /// cluster's worth of words with a bit set (clusters without one stay 0 in the table), then the table.
    /// </summary>
    /// <returns>The new table's offset and entry count.</returns>
    private async ValueTask<(long Offset, long Size)> StoreBitmapAsync(DirtyBitmap bitmap, CancellationToken cancellationToken)
    {
        int clusterSize = _header.ClusterSize;
        long tableSize = Qcow2Bitmaps.TableSizeFor(bitmap, clusterSize);
        if (tableSize > Qcow2Bitmaps.MaxTableSize || (ulong)tableSize * (ulong)clusterSize > Qcow2Bitmaps.MaxPhysicalSize)
        {
            throw new InvalidOperationException($"Bitmap '{bitmap.Name}' is too big");
        }

        if (tableSize == 0)
        {
            // QEMU's g_try_new0 returns NULL for an empty table (a bitmap of a zero-sized image).
            throw new InvalidOperationException("No memory");
        }

        long wordsPerCluster = clusterSize / 8;
        long totalWords = bitmap.WordCount;
        var table = new ulong[tableSize];
        byte[] buffer = new byte[clusterSize];
        long tableOffset = 0;
        try
        {
            for (long i = 0; i < tableSize; i++)
            {
                long firstWord = i * wordsPerCluster;
                if (!bitmap.HasDirtyBits(firstWord, wordsPerCluster))
                {
                    continue;
                }

                long offset = await AllocateForBitmapAsync(bitmap, clusterSize, cancellationToken).ConfigureAwait(false);
                table[i] = (ulong)offset;
                Array.Clear(buffer);
                bitmap.Serialize(firstWord, buffer.AsSpan(0, (int)(Math.Min(wordsPerCluster, totalWords - firstWord) * 8)));
                await WriteBitmapClusterAsync(bitmap, offset, buffer, cancellationToken).ConfigureAwait(false);
            }

            tableOffset = await AllocateForBitmapAsync(bitmap, tableSize * 8, cancellationToken).ConfigureAwait(false);
            byte[] raw = new byte[tableSize * 8];
            for (int i = 0; i < table.Length; i++)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
            }

            await WriteBitmapClusterAsync(bitmap, tableOffset, raw, cancellationToken).ConfigureAwait(false);
            return (tableOffset, tableSize);
        }
        catch
        {
            // QEMU's clear_bitmap_table, then the table itself.
            foreach (ulong entry in table)
            {
                if ((entry & Qcow2Bitmaps.TableEntryOffsetMask) != 0)
                {
                    await _refcounts.FreeClustersAsync((long)(entry & Qcow2Bitmaps.TableEntryOffsetMask), clusterSize, Qcow2DiscardType.Always, CancellationToken.None).ConfigureAwait(false);
                }
            }

            if (tableOffset > 0)
            {
                await _refcounts.FreeClustersAsync(tableOffset, tableSize * 8, Qcow2DiscardType.Other, CancellationToken.None).ConfigureAwait(false);
            }

            throw;
        }
    }

    private async ValueTask<long> AllocateForBitmapAsync(DirtyBitmap bitmap, long size, CancellationToken cancellationToken)
    {
        try
        {
            return await _refcounts.AllocateClustersAsync(size, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new IOException($"Failed to allocate clusters for bitmap '{bitmap.Name}': {ErrorText.Describe(e)}", e);
        }
    }

    private async ValueTask WriteBitmapClusterAsync(DirtyBitmap bitmap, long offset, byte[] data, CancellationToken cancellationToken)
    {
        try
        {
            CheckOverlap(offset, data.Length, Overlap.None);
        }
        catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
        {
            await SignalCorruptionAsync(e).ConfigureAwait(false);
            throw new IOException($"Qcow2 overlap check failed: {ErrorText.Describe(Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO))}", e);
        }

        try
        {
            await File.WriteAsync(offset, data, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new IOException($"Failed to write bitmap '{bitmap.Name}' to file: {ErrorText.Describe(e)}", e);
        }
    }

    /// <summary>
    /// Replaces the bitmap directory (QEMU's update_ext_header_and_dir): the new one goes to new clusters, the caches are
    /// written and flushed, then the header switches to it (durably), and the old one is freed. An empty list drops the
    /// extension and the "bitmaps" auto-clear bit.
    /// </summary>
    /// <exception cref="IOException">The directory could not be written (the image keeps the old one).</exception>
    private async ValueTask UpdateDirectoryAsync(List<Qcow2Bitmap> entries, CancellationToken cancellationToken)
    {
        ulong oldOffset = _header.BitmapDirectoryOffset;
        ulong oldSize = _header.BitmapDirectorySize;
        uint oldCount = _header.BitmapCount;
        bool oldExtension = _header.HasBitmapsExtension;
        ulong oldAutoclear = _header.AutoclearFeatures;
        long newOffset = 0;
        long newSize = 0;
        long allocated = 0;
        try
        {
            if (entries.Count > 0)
            {
                if (entries.Count > Qcow2Layout.MaxBitmaps)
                {
                    throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
                }

                byte[] directory = Qcow2Bitmaps.BuildDirectory(entries, _header.ClusterSize, Length);
                newOffset = await _refcounts.AllocateClustersAsync(directory.Length, cancellationToken).ConfigureAwait(false);
                allocated = directory.Length;
                CheckOverlap(newOffset, directory.Length, Overlap.None);
                await File.WriteAsync(newOffset, directory, WriteFlags.None, cancellationToken).ConfigureAwait(false);
                newSize = directory.Length;
                await WriteCachesAsync(cancellationToken).ConfigureAwait(false);
                await FlushFileAsync(cancellationToken).ConfigureAwait(false);
                _header.AutoclearFeatures |= Qcow2Layout.AutoclearBitmaps;
            }
            else
            {
                _header.AutoclearFeatures &= ~Qcow2Layout.AutoclearBitmaps;
            }

            _header.BitmapDirectoryOffset = (ulong)newOffset;
            _header.BitmapDirectorySize = (ulong)newSize;
            _header.BitmapCount = (uint)entries.Count;
            _header.HasBitmapsExtension = entries.Count > 0;
            await UpdateHeaderSyncAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (newOffset > 0)
            {
                await _refcounts.FreeClustersAsync(newOffset, allocated, Qcow2DiscardType.Other, CancellationToken.None).ConfigureAwait(false);
            }

            _header.BitmapDirectoryOffset = oldOffset;
            _header.BitmapDirectorySize = oldSize;
            _header.BitmapCount = oldCount;
            _header.HasBitmapsExtension = oldExtension;
            _header.AutoclearFeatures = oldAutoclear;
            throw;
        }

        if (oldSize > 0)
        {
            await _refcounts.FreeClustersAsync((long)oldOffset, (long)oldSize, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
        }

        ReplaceDirectoryEntries(entries);
    }

    /// <summary>
    /// Frees a bitmap's data clusters (discarding them in the file) and then its table (QEMU's free_bitmap_clusters); a
    /// table that cannot be read or has invalid entries is left alone.
    /// </summary>
    private async ValueTask FreeBitmapClustersAsync(ulong tableOffset, uint tableSize, CancellationToken cancellationToken)
    {
        int clusterSize = _header.ClusterSize;
        ulong[] table;
        try
        {
            table = await Qcow2Bitmaps.ReadTableAsync(File, tableOffset, tableSize, clusterSize, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            return;
        }

        foreach (ulong entry in table)
        {
            ulong offset = entry & Qcow2Bitmaps.TableEntryOffsetMask;
            if (offset != 0)
            {
                await _refcounts.FreeClustersAsync((long)offset, clusterSize, Qcow2DiscardType.Always, cancellationToken).ConfigureAwait(false);
            }
        }

        await _refcounts.FreeClustersAsync((long)tableOffset, (long)tableSize * 8, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
    }
}
