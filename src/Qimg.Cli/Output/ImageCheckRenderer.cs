using System.Globalization;
using System.Numerics;
using System.Text;
using Qimg.Formats;
using Qimg.Operations.Check;

namespace Qimg.Cli.Output;

/// <summary>Renders an <see cref="ImageCheckReport"/> as qemu-img 7.2 does: <c>dump_human_image_check</c> and the QAPI JSON.</summary>
internal static class ImageCheckRenderer
{
    /// <summary>The QAPI <c>ImageCheck</c> object: optional members only when non-zero, in schema order (QDict order decides the output).</summary>
    public static InfoObject ToQapi(ImageCheckReport report)
    {
        CheckResult r = report.Result;
        var obj = new InfoObject();
        obj.Add("filename", report.FileName);
        obj.Add("format", report.Format);
        obj.Add("check-errors", r.CheckErrors);
        AddIfNonZero(obj, "image-end-offset", r.ImageEndOffset);
        AddIfNonZero(obj, "corruptions", r.Corruptions);
        AddIfNonZero(obj, "leaks", r.Leaks);
        AddIfNonZero(obj, "corruptions-fixed", r.CorruptionsFixed);
        AddIfNonZero(obj, "leaks-fixed", r.LeaksFixed);
        AddIfNonZero(obj, "total-clusters", r.TotalClusters);
        AddIfNonZero(obj, "allocated-clusters", r.AllocatedClusters);
        AddIfNonZero(obj, "fragmented-clusters", r.FragmentedClusters);
        AddIfNonZero(obj, "compressed-clusters", r.CompressedClusters);
        return obj;
    }

    /// <summary>The pretty JSON, with its trailing newline.</summary>
    public static string ToJson(ImageCheckReport report)
    {
        var writer = new QemuJsonWriter();
        writer.Value(null, ToQapi(report));
        return writer + "\n";
    }

    /// <summary>QEMU's <c>dump_human_image_check</c>.</summary>
    public static string ToHuman(ImageCheckReport report)
    {
        CheckResult r = report.Result;
        var text = new StringBuilder();
        if (r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0)
        {
            text.Append("No errors were found on the image.\n");
        }
        else
        {
            if (r.Corruptions != 0)
            {
                text.Append(CultureInfo.InvariantCulture, $"\n{r.Corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n");
            }

            if (r.Leaks != 0)
            {
                text.Append(CultureInfo.InvariantCulture, $"\n{r.Leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n");
            }

            if (r.CheckErrors != 0)
            {
                text.Append(CultureInfo.InvariantCulture, $"\n{r.CheckErrors} internal errors have occurred during the check.\n");
            }
        }

        if (r.TotalClusters != 0 && r.AllocatedClusters != 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"{r.AllocatedClusters}/{r.TotalClusters} = {CFormat.Fixed2(r.AllocatedClusters * 100.0 / r.TotalClusters)}% allocated, ");
            text.Append(CultureInfo.InvariantCulture, $"{CFormat.Fixed2(r.FragmentedClusters * 100.0 / r.AllocatedClusters)}% fragmented, {CFormat.Fixed2(r.CompressedClusters * 100.0 / r.AllocatedClusters)}% compressed clusters\n");
        }

        if (r.ImageEndOffset != 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"Image end offset: {r.ImageEndOffset}\n");
        }

        return text.ToString();
    }

    /// <summary>What qemu-img prints after a repair that fixed something, before it checks the image again.</summary>
    public static string Repaired(CheckResult repaired) => string.Create(CultureInfo.InvariantCulture,
        $"The following inconsistencies were found and repaired:\n\n    {repaired.LeaksFixed} leaked clusters\n    {repaired.CorruptionsFixed} corruptions\n\nDouble checking the fixed image now...\n");

    private static void AddIfNonZero(InfoObject obj, string key, long value)
    {
        if (value != 0)
        {
            obj.Add(key, value);
        }
    }

}
