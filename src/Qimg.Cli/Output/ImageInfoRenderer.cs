using System.Globalization;
using System.Text;
using Qimg.Formats;
using Qimg.Operations.Info;

namespace Qimg.Cli.Output;

/// <summary>Renders <see cref="ImageInfo"/> as qemu-img 7.2 does: <c>bdrv_image_info_dump</c> and the QAPI JSON.</summary>
internal static class ImageInfoRenderer
{
    /// <summary>The QAPI <c>ImageInfo</c> object, members added in schema order (which, with QDict hashing, fixes the JSON key order).</summary>
    public static InfoObject ToQapi(ImageInfo info)
    {
        var obj = new InfoObject();
        obj.Add("filename", info.FileName);
        obj.Add("format", info.Format);
        if (info.DirtyFlag is bool dirty)
        {
            obj.Add("dirty-flag", dirty);
        }

        if (info.ActualSize is long actual)
        {
            obj.Add("actual-size", actual);
        }

        obj.Add("virtual-size", info.VirtualSize);
        if (info.ClusterSize is long cluster)
        {
            obj.Add("cluster-size", cluster);
        }

        if (info.Encrypted is bool encrypted)
        {
            obj.Add("encrypted", encrypted);
        }

        if (info.BackingFileName is string backing)
        {
            obj.Add("backing-filename", backing);
        }

        if (info.FullBackingFileName is string fullBacking)
        {
            obj.Add("full-backing-filename", fullBacking);
        }

        if (info.BackingFileFormat is string backingFormat)
        {
            obj.Add("backing-filename-format", backingFormat);
        }

        if (info.Snapshots is { } snapshots)
        {
            var list = new InfoList();
            foreach (SnapshotInfo snapshot in snapshots)
            {
                list.Add(ToQapi(snapshot));
            }

            obj.Add("snapshots", list);
        }

        if (info.FormatSpecific is { } specific)
        {
            obj.Add("format-specific", new InfoObject().Add("type", specific.Type).Add("data", specific.Data));
        }

        return obj;
    }

    /// <summary>The QAPI <c>SnapshotInfo</c> object.</summary>
    public static InfoObject ToQapi(SnapshotInfo snapshot)
    {
        var obj = new InfoObject()
            .Add("id", snapshot.Id)
            .Add("name", snapshot.Name)
            .Add("vm-state-size", (long)snapshot.VmStateSize)
            .Add("date-sec", (long)snapshot.DateSeconds)
            .Add("date-nsec", (long)snapshot.DateNanoseconds)
            .Add("vm-clock-sec", (long)(snapshot.VmClockNanoseconds / 1000000000))
            .Add("vm-clock-nsec", (long)(snapshot.VmClockNanoseconds % 1000000000));
        if (snapshot.InstructionCount is ulong icount)
        {
            obj.Add("icount", (long)icount);
        }

        return obj;
    }

    /// <summary>One image as pretty JSON (no trailing newline).</summary>
    public static string ToJson(ImageInfo info)
    {
        var writer = new QemuJsonWriter();
        writer.Value(null, ToQapi(info));
        return writer.ToString();
    }

    /// <summary>A list of images (info --backing-chain) as pretty JSON (no trailing newline).</summary>
    public static string ToJson(IEnumerable<ImageInfo> infos)
    {
        var list = new InfoList();
        foreach (ImageInfo info in infos)
        {
            list.Add(ToQapi(info));
        }

        var writer = new QemuJsonWriter();
        writer.Value(null, list);
        return writer.ToString();
    }

    /// <summary>QEMU's <c>bdrv_image_info_dump</c>.</summary>
    public static string ToHuman(ImageInfo info)
    {
        var text = new StringBuilder();
        string diskSize = info.ActualSize is long actual ? CFormat.SizeToString((ulong)actual) : "unavailable";
        text.Append(CultureInfo.InvariantCulture,
            $"image: {info.FileName}\nfile format: {info.Format}\nvirtual size: {CFormat.SizeToString((ulong)info.VirtualSize)} ({info.VirtualSize} bytes)\ndisk size: {diskSize}\n");
        if (info.Encrypted == true)
        {
            text.Append("encrypted: yes\n");
        }

        if (info.ClusterSize is long cluster)
        {
            text.Append(CultureInfo.InvariantCulture, $"cluster_size: {cluster}\n");
        }

        if (info.DirtyFlag == true)
        {
            text.Append("cleanly shut down: no\n");
        }

        if (info.BackingFileName is string backing)
        {
            text.Append("backing file: ").Append(backing);
            if (info.FullBackingFileName is null)
            {
                text.Append(" (cannot determine actual path)");
            }
            else if (info.FullBackingFileName != backing)
            {
                text.Append(" (actual path: ").Append(info.FullBackingFileName).Append(')');
            }

            text.Append('\n');
            if (info.BackingFileFormat is string backingFormat)
            {
                text.Append("backing file format: ").Append(backingFormat).Append('\n');
            }
        }

        if (info.Snapshots is { } snapshots)
        {
            text.Append("Snapshot list:\n");
            text.Append(SnapshotTableHeader()).Append('\n');
            foreach (SnapshotInfo snapshot in snapshots)
            {
                text.Append(SnapshotTableRow(snapshot)).Append('\n');
            }
        }

        if (info.FormatSpecific is { } specific)
        {
            text.Append("Format specific information:\n");
            DumpValue(text, 1, specific.Data);
        }

        return text.ToString();
    }

    /// <summary>The header of QEMU's snapshot table (<c>bdrv_snapshot_dump(NULL)</c>), without newline.</summary>
    public static string SnapshotTableHeader() =>
        CFormat.PadRight("ID", 10) + CFormat.PadRight("TAG", 17) + CFormat.PadLeft("VM SIZE", 8) + CFormat.PadLeft("DATE", 20)
        + CFormat.PadLeft("VM CLOCK", 13) + CFormat.PadLeft("ICOUNT", 11);

    /// <summary>One row of QEMU's snapshot table (<c>bdrv_snapshot_dump</c>), without newline; the date in local time.</summary>
    public static string SnapshotTableRow(SnapshotInfo snapshot)
    {
        DateTime date = DateTimeOffset.FromUnixTimeSeconds(snapshot.DateSeconds).LocalDateTime;
        ulong seconds = snapshot.VmClockNanoseconds / 1000000000;
        string clock = string.Create(CultureInfo.InvariantCulture,
            $"{(int)(seconds / 3600):00}:{(int)(seconds / 60 % 60):00}:{(int)(seconds % 60):00}.{(int)(snapshot.VmClockNanoseconds / 1000000 % 1000):000}");
        string icount = snapshot.InstructionCount is ulong count ? ((long)count).ToString(CultureInfo.InvariantCulture) : string.Empty;
        return CFormat.PadRight(snapshot.Id, 9) + " " + CFormat.PadRight(snapshot.Name, 16) + " "
            + CFormat.PadLeft(CFormat.SizeToString(snapshot.VmStateSize), 8)
            + CFormat.PadLeft(date.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture), 20)
            + CFormat.PadLeft(clock, 13) + CFormat.PadLeft(icount, 11);
    }

    /// <summary>QEMU's <c>dump_qobject</c>: dicts in QDict order with '-' in keys shown as ' ', lists as "[i]:".</summary>
    private static void DumpValue(StringBuilder text, int indentation, object value)
    {
        switch (value)
        {
            case InfoObject obj:
                foreach (KeyValuePair<string, object> entry in QDictOrder.Sort(obj))
                {
                    bool composite = entry.Value is InfoObject or InfoList;
                    text.Append(' ', indentation * 4).Append(entry.Key.Replace('-', ' ')).Append(':').Append(composite ? '\n' : ' ');
                    DumpValue(text, indentation + 1, entry.Value);
                    if (!composite)
                    {
                        text.Append('\n');
                    }
                }

                break;
            case InfoList list:
                int i = 0;
                foreach (object item in list)
                {
                    bool composite = item is InfoObject or InfoList;
                    text.Append(' ', indentation * 4).Append(CultureInfo.InvariantCulture, $"[{i}]:").Append(composite ? '\n' : ' ');
                    DumpValue(text, indentation + 1, item);
                    if (!composite)
                    {
                        text.Append('\n');
                    }

                    i++;
                }

                break;
            case string s:
                text.Append(s);
                break;
            case long l:
                text.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case ulong u:
                text.Append(u.ToString(CultureInfo.InvariantCulture));
                break;
            case bool b:
                text.Append(b ? "true" : "false");
                break;
            case double d:
                text.Append(CFormat.G(d, 17));
                break;
        }
    }
}
