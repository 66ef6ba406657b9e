using Qimg.Cli.Output;
using Qimg.Formats;

namespace Qimg.Cli.Tests.Output;

/// <summary>The JSON writer and QDict ordering, against texts printed by qemu-img 7.2.</summary>
public class QemuJsonWriterTests
{
    [Fact]
    public void Value_ImageInfoKeys_InQemuOrder()
    {
        // Keys added in QAPI field order, as QEMU's output visitor adds them.
        var info = new InfoObject()
            .Add("filename", "t.qcow2")
            .Add("format", "qcow2")
            .Add("dirty-flag", false)
            .Add("actual-size", 331776L)
            .Add("virtual-size", 1048576L)
            .Add("cluster-size", 65536L)
            .Add("backing-filename", "b.qcow2")
            .Add("full-backing-filename", "b.qcow2")
            .Add("backing-filename-format", "qcow2")
            .Add("format-specific", new InfoObject()
                .Add("type", "qcow2")
                .Add("data", new InfoObject()
                    .Add("compat", "1.1")
                    .Add("compression-type", "zlib")
                    .Add("lazy-refcounts", false)
                    .Add("refcount-bits", 16L)
                    .Add("corrupt", false)
                    .Add("extended-l2", false)));
        var writer = new QemuJsonWriter();
        writer.Value(null, info);
        Assert.Equal(
            """
            {
                "backing-filename-format": "qcow2",
                "virtual-size": 1048576,
                "filename": "t.qcow2",
                "cluster-size": 65536,
                "format": "qcow2",
                "actual-size": 331776,
                "format-specific": {
                    "type": "qcow2",
                    "data": {
                        "compat": "1.1",
                        "compression-type": "zlib",
                        "lazy-refcounts": false,
                        "refcount-bits": 16,
                        "corrupt": false,
                        "extended-l2": false
                    }
                },
                "full-backing-filename": "b.qcow2",
                "backing-filename": "b.qcow2",
                "dirty-flag": false
            }
            """.ReplaceLineEndings("\n"),
            writer.ToString());
    }

    [Fact]
    public void Value_EmptyContainersAndEscapes_AsQemu()
    {
        var writer = new QemuJsonWriter();
        writer.Value(null, new InfoList()
            .Add(new InfoObject())
            .Add(new InfoList())
            .Add("a\"b\\c\n\t\u0001é😀\u007f")
            .Add(1.5)
            .Add(ulong.MaxValue)
            .Add(-1L));
        Assert.Equal(
            "[\n    {\n    },\n    [\n    ],\n    \"a\\\"b\\\\c\\n\\t\\u0001\\u00E9\\uD83D\\uDE00\\u007F\",\n    1.5,\n    18446744073709551615,\n    -1\n]",
            writer.ToString());
    }

    [Fact]
    public void Value_EmptyTopLevelObject_AsQemu()
    {
        var writer = new QemuJsonWriter();
        writer.Value(null, new InfoObject());
        Assert.Equal("{\n}", writer.ToString());
    }
}
