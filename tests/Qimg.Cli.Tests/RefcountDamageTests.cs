using System.Buffers.Binary;
using System.Security.Cryptography;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// Read-only commands on images whose only damage is in the refcount structure (issue 7, section 4): qemu-img reads
/// the data anyway (its metadata-preallocation probe ignores a refcount it cannot read) and reports the corruption
/// only where it does. Same stdout, stderr, exit code and output file as qemu-img 7.2; the input stays byte-identical.
/// </summary>
public class RefcountDamageTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        string[] damages = ["bit63", "unaligned", "reserved", "pastEof", "zero"];
        string[] commands = ["info", "map", "map-json", "check", "convert-raw", "convert-qcow2", "compare"];
        foreach (string damage in damages)
        {
            foreach (string command in commands)
            {
                data.Add(damage, command);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReadOnlyCommand_RefcountTableDamage_SameAsQemuImg(string damage, string command)
    {
        using var temp = new TempDirectory();
        string good = temp.File("good.qcow2");
        string image = temp.File("p.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", good, "8M");
        Tools.QemuIo("-c", "write -P 1 0 64k", good);
        File.Copy(good, image);
        Damage(image, damage);
        byte[] before = SHA256.HashData(File.ReadAllBytes(image));
        string output = temp.File("o.img");

        string[] args = command switch
        {
            "map-json" => ["map", "--output=json", image],
            "convert-raw" => ["convert", "-O", "raw", image, output],
            "convert-qcow2" => ["convert", "-O", "qcow2", image, output],
            "compare" => ["compare", image, good],
            _ => [command, image],
        };

        CommandResult expected = Golden.Normalize(Tools.QemuImg(args));
        byte[]? expectedData = ReadGuestData(output);
        CommandResult actual = Tools.Qimg(args);
        byte[]? actualData = ReadGuestData(output);

        Golden.AssertEqual(expected, actual, args);
        Assert.Equal(expectedData, actualData);
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(image)));
    }

    /// <summary>Changes the first refcount table entry (the header's refcount table offset is at byte 48).</summary>
    private static void Damage(string path, string damage)
    {
        using FileStream file = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        byte[] header = new byte[56];
        file.ReadExactly(header);
        long table = (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(48));
        byte[] entry = new byte[8];
        file.Position = table;
        file.ReadExactly(entry);
        ulong value = BinaryPrimitives.ReadUInt64BigEndian(entry);
        value = damage switch
        {
            "bit63" => value | (1UL << 63),
            "unaligned" => value + 512,
            "reserved" => value | (1UL << 9),
            "pastEof" => value + (1UL << 30),
            _ => 0,
        };
        BinaryPrimitives.WriteUInt64BigEndian(entry, value);
        file.Position = table;
        file.Write(entry);
    }

    /// <summary>The guest data of a converted image (as raw, through qemu-img), then deletes it; null when there is none.</summary>
    private static byte[]? ReadGuestData(string output)
    {
        if (!File.Exists(output))
        {
            return null;
        }

        string raw = output + ".raw";
        Tools.QemuImgOk("convert", "-O", "raw", output, raw);
        byte[] data = File.ReadAllBytes(raw);
        File.Delete(raw);
        File.Delete(output);
        return data;
    }
}
