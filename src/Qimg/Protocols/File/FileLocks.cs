using Microsoft.Win32.SafeHandles;
using Qimg.Block;
using Qimg.Interop;

namespace Qimg.Protocols.File;

/// <summary>
/// QEMU's image locking protocol on one open file (file-posix.c <c>raw_apply_lock_bytes</c>,
/// <c>raw_check_lock_bytes</c> and <c>raw_handle_perm_lock</c>): shared OFD locks on byte 100 + i for each permission
/// bit i held and on byte 200 + i for each permission bit i not shared with others. A user may take a permission only
/// if nobody locks its 200 + i byte, and may refuse to share one only if nobody locks its 100 + i byte; those tests
/// use F_OFD_GETLK with a write lock, which the user's own read locks do not conflict with.
/// </summary>
/// <remarks>Not thread-safe; the owner serializes permission changes (they happen while opening).</remarks>
internal sealed class FileLocks
{
    private const int PermissionBase = 100;
    private const int SharedBase = 200;
    private const int BitCount = 4;

    private readonly SafeFileHandle _handle;
    private readonly string _fileName;
    private PermissionPair _current = PermissionPair.Unused;
    private BlockPermissions _lockedPerm;
    private BlockPermissions _lockedUnshared;

    public FileLocks(SafeFileHandle handle, string fileName)
    {
        _handle = handle;
        _fileName = fileName;
    }

    public PermissionPair Current => _current;

    /// <summary>
    /// Moves to <paramref name="next"/>: takes the new bytes first, checks that nobody else conflicts, then drops the
    /// bytes no longer needed. On failure the previous state is restored and nothing changes.
    /// </summary>
    /// <exception cref="ImageLockException">A lock could not be taken, or another process conflicts.</exception>
    public void Change(PermissionPair next)
    {
        bool onlyRelaxing = (_current.Perm | next.Perm) == _current.Perm
            && (_current.Shared & next.Shared) == _current.Shared;
        if (!onlyRelaxing)
        {
            string? error = Apply(_current.Perm | next.Perm, ~_current.Shared | ~next.Shared, unlock: false);
            string? hint = null;
            if (error is null)
            {
                error = Check(next);
                hint = error is null ? null : $"Is another process using the image [{_fileName}]?";
            }

            if (error is not null)
            {
                // Unlocking cannot conflict with anyone; a failure here would only leave extra bytes locked.
                _ = Apply(_current.Perm, ~_current.Shared, unlock: true);
                throw new ImageLockException(error, hint);
            }
        }

        _ = Apply(next.Perm, ~next.Shared, unlock: true);
        _current = next;
    }

    /// <summary>
    /// Takes QEMU's locks for <paramref name="permissions"/> on a descriptor without keeping state (QEMU's
    /// <c>raw_apply_lock_bytes(NULL, …)</c> + <c>raw_check_lock_bytes</c>, as image creation does); the locks live
    /// as long as the descriptor or until <see cref="UnlockAll"/>.
    /// </summary>
    /// <exception cref="ImageLockException">As <see cref="Change"/>.</exception>
    public static void LockForCreate(SafeFileHandle handle, string fileName, PermissionPair permissions) =>
        new FileLocks(handle, fileName).Change(permissions);

    /// <summary>Drops every lock byte QEMU could hold on the descriptor (errors ignored, as QEMU only warns).</summary>
    public static void UnlockAll(SafeFileHandle handle)
    {
        for (int i = 0; i < BitCount; i++)
        {
            _ = Libc.SetOfdLock(handle, PermissionBase + i, 1, Libc.F_UNLCK);
        }

        for (int i = 0; i < BitCount; i++)
        {
            _ = Libc.SetOfdLock(handle, SharedBase + i, 1, Libc.F_UNLCK);
        }
    }

    /// <summary>
    /// Locks the bytes of <paramref name="perm"/> and <paramref name="unshared"/> not locked yet; with
    /// <paramref name="unlock"/>, also unlocks locked bytes outside them. Returns QEMU's error text, or null.
    /// </summary>
    private string? Apply(BlockPermissions perm, BlockPermissions unshared, bool unlock)
    {
        unshared &= BlockPermissions.All;
        for (int i = 0; i < BitCount; i++)
        {
            var bit = (BlockPermissions)(1 << i);
            if ((perm & bit) != 0 && (_lockedPerm & bit) == 0)
            {
                int errno = Libc.SetOfdLock(_handle, PermissionBase + i, 1, Libc.F_RDLCK);
                if (errno != 0)
                {
                    return LockError($"Failed to lock byte {PermissionBase + i}", errno);
                }

                _lockedPerm |= bit;
            }
            else if (unlock && (_lockedPerm & bit) != 0 && (perm & bit) == 0)
            {
                int errno = Libc.SetOfdLock(_handle, PermissionBase + i, 1, Libc.F_UNLCK);
                if (errno != 0)
                {
                    return $"Failed to unlock byte {PermissionBase + i}: {Libc.StrError(errno)}";
                }

                _lockedPerm &= ~bit;
            }
        }

        for (int i = 0; i < BitCount; i++)
        {
            var bit = (BlockPermissions)(1 << i);
            if ((unshared & bit) != 0 && (_lockedUnshared & bit) == 0)
            {
                int errno = Libc.SetOfdLock(_handle, SharedBase + i, 1, Libc.F_RDLCK);
                if (errno != 0)
                {
                    return LockError($"Failed to lock byte {SharedBase + i}", errno);
                }

                _lockedUnshared |= bit;
            }
            else if (unlock && (_lockedUnshared & bit) != 0 && (unshared & bit) == 0)
            {
                int errno = Libc.SetOfdLock(_handle, SharedBase + i, 1, Libc.F_UNLCK);
                if (errno != 0)
                {
                    return $"Failed to unlock byte {SharedBase + i}: {Libc.StrError(errno)}";
                }

                _lockedUnshared &= ~bit;
            }
        }

        return null;
    }

    /// <summary>Checks that no other process blocks <paramref name="wanted"/>; returns QEMU's error text, or null.</summary>
    private string? Check(PermissionPair wanted)
    {
        for (int i = 0; i < BitCount; i++)
        {
            var bit = (BlockPermissions)(1 << i);
            if ((wanted.Perm & bit) != 0)
            {
                int errno = Libc.TestOfdLock(_handle, SharedBase + i, 1, Libc.F_WRLCK);
                if (errno != 0)
                {
                    return LockError($"Failed to get \"{PermissionPair.Names(bit)}\" lock", errno);
                }
            }
        }

        for (int i = 0; i < BitCount; i++)
        {
            var bit = (BlockPermissions)(1 << i);
            if ((wanted.Shared & bit) == 0)
            {
                int errno = Libc.TestOfdLock(_handle, PermissionBase + i, 1, Libc.F_WRLCK);
                if (errno != 0)
                {
                    return LockError($"Failed to get shared \"{PermissionPair.Names(bit)}\" lock", errno);
                }
            }
        }

        return null;
    }

    // QEMU's raw_lock_error_setg_errno: "somebody else holds it" (EAGAIN, EACCES) is the common case and gets no errno text.
    private static string LockError(string message, int errno) =>
        errno is Libc.EAGAIN or Libc.EACCES ? message : $"{message}: {Libc.StrError(errno)}";
}
