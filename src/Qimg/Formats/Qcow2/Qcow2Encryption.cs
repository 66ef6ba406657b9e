using System.Buffers.Binary;
using System.Text;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// What <c>info</c> shows about an encrypted image (QEMU's qcrypto_block_get_info): "aes" for the legacy method, and the
/// LUKS header's parameters for LUKS. qimg cannot decrypt; it only reads these headers, with QEMU's checks and messages
/// (crypto/block-luks.c), so that <c>info</c> works on encrypted images.
/// </summary>
internal static class Qcow2Encryption
{
    private const int LuksHeaderSize = 592;
    private const int LuksSectorSize = 512;
    private const int LuksKeySlotOffset = 4096;
    private const int LuksKeySlots = 8;
    private const int LuksStripes = 4000;
    private const uint LuksSlotEnabled = 0x00AC71F3;
    private const uint LuksSlotDisabled = 0x0000DEAD;
    private static readonly byte[] s_luksMagic = [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE];
    private static readonly string[] s_hashes = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160"];
    private static readonly string[] s_modes = ["ecb", "cbc", "xts", "ctr"];
    private static readonly string[] s_ivgens = ["plain", "plain64", "essiv"];

    /// <summary>The "encrypt" member of the format-specific info, or null when the image is not encrypted.</summary>
    /// <exception cref="InvalidDataException">The LUKS header is invalid (QEMU's message).</exception>
    public static async ValueTask<InfoObject?> ReadInfoAsync(BlockNode file, Qcow2Header header, CancellationToken cancellationToken)
    {
        if (header.CryptMethod == Qcow2Layout.CryptAes)
        {
            return new InfoObject().Add("format", "aes");
        }

        if (header.CryptMethod != Qcow2Layout.CryptLuks || header.CryptoHeaderOffset == 0)
        {
            return null;
        }

        byte[] raw = new byte[LuksHeaderSize];
        await file.ReadAsync((long)header.CryptoHeaderOffset, raw, cancellationToken).ConfigureAwait(false);
        return ParseLuks(raw);
    }

    /// <summary>QEMU's qcrypto_block_luks_check_header and parse_header, producing QCryptoBlockInfoLUKS in QEMU's key order.</summary>
    internal static InfoObject ParseLuks(ReadOnlySpan<byte> h)
    {
        if (!h[..6].SequenceEqual(s_luksMagic))
        {
            throw new InvalidDataException("Volume is not in LUKS format");
        }

        ushort version = BinaryPrimitives.ReadUInt16BigEndian(h[6..]);
        if (version != 1)
        {
            throw new InvalidDataException($"LUKS version {version} is not supported");
        }

        string cipherName = Field(h.Slice(8, 32), "cipher name");
        string cipherMode = Field(h.Slice(40, 32), "cipher mode");
        string hashSpec = Field(h.Slice(72, 32), "hash spec");
        uint payloadSector = BinaryPrimitives.ReadUInt32BigEndian(h[104..]);
        uint keyBytes = BinaryPrimitives.ReadUInt32BigEndian(h[108..]);
        uint iterations = BinaryPrimitives.ReadUInt32BigEndian(h[164..]);
        const int headerSectors = LuksKeySlotOffset / LuksSectorSize;
        if (payloadSector < headerSectors)
        {
            throw new InvalidDataException("LUKS payload is overlapping with the header");
        }

        if (iterations == 0)
        {
            throw new InvalidDataException("LUKS key iteration count is zero");
        }

        var slots = new (uint Active, uint Iterations, uint KeyOffset, uint Stripes)[LuksKeySlots];
        for (int i = 0; i < LuksKeySlots; i++)
        {
            ReadOnlySpan<byte> slot = h.Slice(208 + i * 48, 48);
            slots[i] = (BinaryPrimitives.ReadUInt32BigEndian(slot), BinaryPrimitives.ReadUInt32BigEndian(slot[4..]),
                BinaryPrimitives.ReadUInt32BigEndian(slot[40..]), BinaryPrimitives.ReadUInt32BigEndian(slot[44..]));
        }

        for (int i = 0; i < LuksKeySlots; i++)
        {
            (uint active, uint slotIterations, uint start, uint stripes) = slots[i];
            if (stripes != LuksStripes)
            {
                throw new InvalidDataException($"Keyslot {i} is corrupted (stripes {(int)stripes} != {LuksStripes})");
            }

            if (active != LuksSlotDisabled && active != LuksSlotEnabled)
            {
                throw new InvalidDataException($"Keyslot {i} state (active/disable) is corrupted");
            }

            if (active == LuksSlotEnabled && slotIterations == 0)
            {
                throw new InvalidDataException($"Keyslot {i} iteration count is zero");
            }

            ulong length = SplitKeySectors(keyBytes, stripes, headerSectors);
            if (start < headerSectors)
            {
                throw new InvalidDataException($"Keyslot {i} is overlapping with the LUKS header");
            }

            if (start + length > payloadSector)
            {
                throw new InvalidDataException($"Keyslot {i} is overlapping with the encrypted payload");
            }

            for (int j = i + 1; j < LuksKeySlots; j++)
            {
                ulong start2 = slots[j].KeyOffset;
                ulong length2 = SplitKeySectors(keyBytes, slots[j].Stripes, headerSectors);
                if (start + length > start2 && start2 + length2 > start)
                {
                    throw new InvalidDataException($"Keyslots {i} and {j} are overlapping in the header");
                }
            }
        }

        // cipher_mode is "<mode>-<iv generator>[:<iv hash>]", e.g. "xts-plain64" or "cbc-essiv:sha256".
        int dash = cipherMode.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
        {
            throw new InvalidDataException($"Unexpected cipher mode string format '{cipherMode}'");
        }

        string mode = cipherMode[..dash];
        string ivgen = cipherMode[(dash + 1)..];
        string? ivHash = null;
        int colon = ivgen.IndexOf(':', StringComparison.Ordinal);
        if (colon >= 0)
        {
            ivHash = Lookup(ivgen[(colon + 1)..], s_hashes, "Hash algorithm");
            ivgen = ivgen[..colon];
        }

        mode = Lookup(mode, s_modes, "Cipher mode");
        uint cipherKeyBytes = mode == "xts" ? keyBytes / 2 : keyBytes;
        string cipherAlg = (cipherName, cipherKeyBytes) switch
        {
            ("aes", 16) => "aes-128",
            ("aes", 24) => "aes-192",
            ("aes", 32) => "aes-256",
            ("cast5", 16) => "cast5-128",
            ("serpent", 16) => "serpent-128",
            ("serpent", 24) => "serpent-192",
            ("serpent", 32) => "serpent-256",
            ("twofish", 16) => "twofish-128",
            ("twofish", 24) => "twofish-192",
            ("twofish", 32) => "twofish-256",
            _ => throw new InvalidDataException($"Algorithm '{cipherName}' with key size {(int)cipherKeyBytes} bytes not supported"),
        };
        string hash = Lookup(hashSpec, s_hashes, "Hash algorithm");
        ivgen = Lookup(ivgen, s_ivgens, "IV generator");
        if (ivgen == "essiv" && ivHash is null)
        {
            throw new InvalidDataException("Missing IV generator hash specification");
        }

        var slotList = new InfoList();
        foreach ((uint active, uint slotIterations, uint keyOffset, uint stripes) in slots)
        {
            var slot = new InfoObject().Add("active", active == LuksSlotEnabled);
            if (active == LuksSlotEnabled)
            {
                slot.Add("iters", (long)slotIterations);
            }

            slot.Add("key-offset", (long)keyOffset * LuksSectorSize);
            if (active == LuksSlotEnabled)
            {
                slot.Add("stripes", (long)stripes);
            }

            slotList.Add(slot);
        }

        // Keys in the order of QEMU's QDict hash buckets (how qemu-img prints them).
        var info = new InfoObject()
            .Add("ivgen-alg", ivgen)
            .Add("hash-alg", hash)
            .Add("cipher-alg", cipherAlg)
            .Add("uuid", Encoding.ASCII.GetString(Until(h.Slice(168, 40))));
        if (ivgen == "essiv")
        {
            info.Add("ivgen-hash-alg", ivHash!);
        }

        return info
            .Add("format", "luks")
            .Add("cipher-mode", mode)
            .Add("slots", slotList)
            .Add("payload-offset", (long)payloadSector * LuksSectorSize)
            .Add("master-key-iters", (long)iterations);
    }

    private static ulong SplitKeySectors(uint keyBytes, uint stripes, int headerSectors)
    {
        ulong sectors = ((ulong)keyBytes * stripes + LuksSectorSize - 1) / LuksSectorSize;
        return (sectors + (ulong)headerSectors - 1) / (ulong)headerSectors * (ulong)headerSectors;
    }

    private static string Field(ReadOnlySpan<byte> field, string what)
    {
        if (field.IndexOf((byte)0) < 0)
        {
            throw new InvalidDataException($"LUKS header {what} is not NUL terminated");
        }

        return Encoding.ASCII.GetString(Until(field));
    }

    private static ReadOnlySpan<byte> Until(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        return nul >= 0 ? field[..nul] : field;
    }

    private static string Lookup(string name, string[] names, string what) =>
        Array.IndexOf(names, name) >= 0 ? name : throw new InvalidDataException($"{what} '{name}' not supported");
}
