using System.Globalization;
using System.Text;

namespace Qimg.Cli.Tests;

/// <summary>
/// <see cref="Getopt"/> against glibc's getopt_long: Data/getopt-glibc.tsv holds 900 argument vectors over qemu-img's
/// real option tables with the events glibc 2.36 produced for them (option, optind, optarg, argv[optind-1], and the
/// final permuted argv), recorded with a small C program.
/// </summary>
public class GetoptTests
{
    public static IEnumerable<object[]> GlibcCases()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Data", "getopt-glibc.tsv");
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (text.StartsWith('#'))
            {
                continue;
            }

            string[] fields = text.Split('\t');
            yield return [line, fields[0], fields[1], fields[2], fields[3]];
        }
    }

    [Theory]
    [MemberData(nameof(GlibcCases))]
    public void Next_SameEventsAsGlibc(int line, string optstring, string longSpec, string args, string expected)
    {
        LongOption[] longOptions = longSpec.Split(',').Select(spec =>
        {
            string[] parts = spec.Split(':');
            return new LongOption(parts[0], (ArgumentKind)int.Parse(parts[1], CultureInfo.InvariantCulture), int.Parse(parts[2], CultureInfo.InvariantCulture));
        }).ToArray();
        string[] argv = ["prog", .. args.Length == 0 ? [] : args.Split('\u001f')];
        var getopt = new Getopt(argv, optstring, longOptions);
        var events = new StringBuilder();
        int c;
        while ((c = getopt.Next()) != -1)
        {
            events.Append(CultureInfo.InvariantCulture, $"{c}|{getopt.OptInd}|{getopt.OptArg ?? "(null)"}|{getopt.PreviousArgument};");
        }

        events.Append(CultureInfo.InvariantCulture, $"END|{getopt.OptInd};");
        foreach (string arg in getopt.Argv)
        {
            events.Append(arg).Append(' ');
        }

        Assert.True(expected == events.ToString(), $"line {line}: expected\n{expected}\nactual\n{events}");
    }

    [Fact]
    public void Next_PrintingMode_WritesGlibcMessages()
    {
        LongOption[] longOptions =
        [
            new("help", ArgumentKind.None, 'h'),
            new("object", ArgumentKind.Required, 258),
            new("output", ArgumentKind.Required, 256),
        ];
        var errors = new StringWriter();
        var getopt = new Getopt(["measure", "-z", "--o", "--help=1", "--foo", "--output"], "hf:", longOptions, errors);
        var results = new List<int>();
        int c;
        while ((c = getopt.Next()) != -1)
        {
            results.Add(c);
        }

        getopt = new Getopt(["measure", "-f"], "hf:", longOptions, errors);
        while ((c = getopt.Next()) != -1)
        {
            results.Add(c);
        }

        Assert.Equal([(int)'?', '?', '?', '?', '?', '?'], results);
        Assert.Equal(
            "measure: invalid option -- 'z'\n" +
            "measure: option '--o' is ambiguous; possibilities: '--object' '--output'\n" +
            "measure: option '--help' doesn't allow an argument\n" +
            "measure: unrecognized option '--foo'\n" +
            "measure: option '--output' requires an argument\n" +
            "measure: option requires an argument -- 'f'\n",
            errors.ToString());
    }
}
