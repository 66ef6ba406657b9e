using System.Text;

namespace Qimg.Cli.Output;

/// <summary>
/// The order in which QEMU iterates a <c>QDict</c>, which decides the key order of every <c>--output=json</c> object
/// and of the human "Format specific information" dump: QEMU keeps 512 hash buckets (<c>tdb_hash</c> of the key),
/// walks them in bucket order, and within a bucket newest entry first.
/// </summary>
internal static class QDictOrder
{
    private const int BucketCount = 512;

    /// <summary>
    /// Reorders <paramref name="entries"/>, given in insertion order (QAPI field order), into QDict iteration order.
    /// A repeated key replaces the earlier value in place, as <c>qdict_put</c> does.
    /// </summary>
    public static List<KeyValuePair<string, T>> Sort<T>(IEnumerable<KeyValuePair<string, T>> entries)
    {
        var buckets = new SortedDictionary<uint, List<KeyValuePair<string, T>>>();
        foreach (KeyValuePair<string, T> entry in entries)
        {
            uint bucket = Hash(entry.Key) % BucketCount;
            if (!buckets.TryGetValue(bucket, out List<KeyValuePair<string, T>>? list))
            {
                list = [];
                buckets.Add(bucket, list);
            }

            int existing = list.FindIndex(e => e.Key == entry.Key);
            if (existing >= 0)
            {
                list[existing] = entry;
            }
            else
            {
                // QLIST_INSERT_HEAD: the newest entry comes first in its bucket.
                list.Insert(0, entry);
            }
        }

        var sorted = new List<KeyValuePair<string, T>>();
        foreach (List<KeyValuePair<string, T>> list in buckets.Values)
        {
            sorted.AddRange(list);
        }

        return sorted;
    }

    /// <summary>QEMU's <c>tdb_hash</c> over the key's UTF-8 bytes.</summary>
    internal static uint Hash(string key)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(key);
        uint value = unchecked(0x238F13AFu * (uint)bytes.Length);
        for (int i = 0; i < bytes.Length; i++)
        {
            value = unchecked(value + ((uint)bytes[i] << (i * 5 % 24)));
        }

        return unchecked((1103515243u * value) + 12345u);
    }
}
