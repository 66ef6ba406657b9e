namespace Qimg.Cli;

/// <summary>Whether a long option takes an argument (getopt's <c>has_arg</c>).</summary>
internal enum ArgumentKind
{
    None = 0,
    Required = 1,
    Optional = 2,
}

/// <summary>A long option: its name, whether it takes an argument, and the value <see cref="Getopt.Next"/> returns for it.</summary>
internal readonly record struct LongOption(string Name, ArgumentKind HasArgument, int Value);

/// <summary>
/// A re-implementation of GNU <c>getopt_long</c> (glibc 2.26 and later) as qemu-img uses it: argument permutation
/// (options after operands are moved in front of them), "+" for stop-at-first-operand, a leading ':' that silences the
/// built-in messages and returns ':' for a missing argument, "--" ending the options, clustered short options,
/// "-oarg"/"-o arg", "--name=value"/"--name value", and unique-prefix abbreviation of long options (with the same
/// ambiguity rule as glibc). <see cref="OptInd"/> and the permuted <see cref="Argv"/> behave exactly like glibc's
/// <c>optind</c> and <c>argv</c>, because qemu-img's messages quote <c>argv[optind - 1]</c>.
/// </summary>
/// <remarks>One instance scans one argument vector; there is no global state.</remarks>
internal sealed class Getopt
{
    private readonly string[] _argv;
    private readonly string _optstring;
    private readonly LongOption[] _longOptions;
    private readonly bool _permute;
    private readonly bool _printErrors;
    private readonly TextWriter? _errors;
    private string? _nextChar;
    private int _nextCharIndex;
    private int _firstNonOption;
    private int _lastNonOption;

    /// <param name="argv">The arguments, with the program (or command) name at index 0. Permuted in place.</param>
    /// <param name="optstring">Short options as for getopt: "+" or "-" first for the ordering, ':' for silent mode, "x:" for an argument.</param>
    /// <param name="longOptions">The long options.</param>
    /// <param name="errors">Where glibc's own messages go when <paramref name="optstring"/> does not start with ':'.</param>
    public Getopt(string[] argv, string optstring, LongOption[] longOptions, TextWriter? errors = null)
    {
        _argv = argv;
        _longOptions = longOptions;
        _errors = errors;
        _permute = true;
        if (optstring.StartsWith('-') || optstring.StartsWith('+'))
        {
            // '-' (return operands in order as option 1) is not used by qemu-img; treat it like '+'.
            _permute = false;
            optstring = optstring[1..];
        }
        else if (Environment.GetEnvironmentVariable("POSIXLY_CORRECT") is not null)
        {
            _permute = false;
        }

        _printErrors = !optstring.StartsWith(':');
        _optstring = optstring;
        OptInd = 1;
        _firstNonOption = _lastNonOption = 1;
    }

    /// <summary>The argument vector, permuted so that options come before operands (glibc's <c>argv</c>).</summary>
    public string[] Argv => _argv;

    /// <summary>Index of the next element to scan; after -1 was returned, the index of the first operand.</summary>
    public int OptInd { get; private set; }

    /// <summary>The argument of the option just returned, or null.</summary>
    public string? OptArg { get; private set; }

    /// <summary>The option character that caused the last error (0 for long options that were not recognized).</summary>
    public int OptOpt { get; private set; }

    /// <summary>The index in the long option table of the long option just returned, or -1.</summary>
    public int LongIndex { get; private set; } = -1;

    /// <summary>The element <c>argv[optind - 1]</c> that qemu-img quotes in its option errors.</summary>
    public string PreviousArgument => _argv[OptInd - 1];

    /// <summary>
    /// Scans the next option. Returns the option character (or a long option's value), '?' for an unknown option or an
    /// argument given to a long option that takes none, ':' (silent mode) or '?' for a missing argument, and -1 when
    /// the options are over.
    /// </summary>
    public int Next()
    {
        OptArg = null;
        LongIndex = -1;
        int argc = _argv.Length;
        if (OptInd < 1)
        {
            OptInd = 1;
        }

        if (_nextChar is null || _nextCharIndex >= _nextChar.Length)
        {
            _nextChar = null;
            if (_lastNonOption > OptInd)
            {
                _lastNonOption = OptInd;
            }

            if (_firstNonOption > OptInd)
            {
                _firstNonOption = OptInd;
            }

            if (_permute)
            {
                // Options were found after some operands: move them in front.
                if (_firstNonOption != _lastNonOption && _lastNonOption != OptInd)
                {
                    Exchange();
                }
                else if (_lastNonOption != OptInd)
                {
                    _firstNonOption = OptInd;
                }

                while (OptInd < argc && IsNonOption(_argv[OptInd]))
                {
                    OptInd++;
                }

                _lastNonOption = OptInd;
            }

            // "--" ends the options; it is skipped and counted with the options.
            if (OptInd != argc && _argv[OptInd] == "--")
            {
                OptInd++;
                if (_firstNonOption != _lastNonOption && _lastNonOption != OptInd)
                {
                    Exchange();
                }
                else if (_firstNonOption == _lastNonOption)
                {
                    _firstNonOption = OptInd;
                }

                _lastNonOption = argc;
                OptInd = argc;
            }

            if (OptInd == argc)
            {
                if (_firstNonOption != _lastNonOption)
                {
                    OptInd = _firstNonOption;
                }

                return -1;
            }

            if (IsNonOption(_argv[OptInd]))
            {
                // Only reached without permutation: stop at the first operand.
                return -1;
            }

            if (_argv[OptInd][1] == '-')
            {
                _nextChar = _argv[OptInd];
                _nextCharIndex = 2;
                return ProcessLongOption();
            }

            _nextChar = _argv[OptInd];
            _nextCharIndex = 1;
        }

        char c = _nextChar[_nextCharIndex++];
        int spec = _optstring.IndexOf(c);
        if (_nextCharIndex >= _nextChar.Length)
        {
            OptInd++;
        }

        if (spec < 0 || c == ':' || c == ';')
        {
            if (_printErrors)
            {
                _errors?.Write($"{_argv[0]}: invalid option -- '{c}'\n");
            }

            OptOpt = c;
            return '?';
        }

        bool takesArgument = spec + 1 < _optstring.Length && _optstring[spec + 1] == ':';
        if (!takesArgument)
        {
            return c;
        }

        bool optionalArgument = spec + 2 < _optstring.Length && _optstring[spec + 2] == ':';
        if (optionalArgument)
        {
            if (_nextCharIndex < _nextChar.Length)
            {
                OptArg = _nextChar[_nextCharIndex..];
                OptInd++;
            }

            _nextChar = null;
            return c;
        }

        if (_nextCharIndex < _nextChar.Length)
        {
            OptArg = _nextChar[_nextCharIndex..];
            OptInd++;
        }
        else if (OptInd == argc)
        {
            if (_printErrors)
            {
                _errors?.Write($"{_argv[0]}: option requires an argument -- '{c}'\n");
            }

            OptOpt = c;
            c = _printErrors ? '?' : ':';
        }
        else
        {
            OptArg = _argv[OptInd++];
        }

        _nextChar = null;
        return c;
    }

    private int ProcessLongOption()
    {
        string arg = _nextChar!;
        string rest = arg[_nextCharIndex..];
        int equals = rest.IndexOf('=');
        string name = equals < 0 ? rest : rest[..equals];
        const string prefix = "--";

        int found = -1;
        for (int i = 0; i < _longOptions.Length; i++)
        {
            if (_longOptions[i].Name == name)
            {
                found = i;
                break;
            }
        }

        if (found < 0)
        {
            // Abbreviations: unique prefixes, or several prefixes that all mean the same thing.
            List<int>? ambiguous = null;
            for (int i = 0; i < _longOptions.Length; i++)
            {
                if (!_longOptions[i].Name.StartsWith(name, StringComparison.Ordinal))
                {
                    continue;
                }

                if (found < 0)
                {
                    found = i;
                }
                else if (_longOptions[found].HasArgument != _longOptions[i].HasArgument || _longOptions[found].Value != _longOptions[i].Value)
                {
                    ambiguous ??= [found];
                    ambiguous.Add(i);
                }
            }

            if (ambiguous is not null)
            {
                if (_printErrors)
                {
                    var message = new System.Text.StringBuilder($"{_argv[0]}: option '{prefix}{rest}' is ambiguous; possibilities:");
                    foreach (int i in ambiguous)
                    {
                        message.Append($" '{prefix}{_longOptions[i].Name}'");
                    }

                    _errors?.Write(message.Append('\n').ToString());
                }

                _nextChar = null;
                OptInd++;
                OptOpt = 0;
                return '?';
            }
        }

        if (found < 0)
        {
            if (_printErrors)
            {
                _errors?.Write($"{_argv[0]}: unrecognized option '{prefix}{rest}'\n");
            }

            _nextChar = null;
            OptInd++;
            OptOpt = 0;
            return '?';
        }

        LongOption option = _longOptions[found];
        OptInd++;
        _nextChar = null;
        if (equals >= 0)
        {
            if (option.HasArgument != ArgumentKind.None)
            {
                OptArg = rest[(equals + 1)..];
            }
            else
            {
                if (_printErrors)
                {
                    _errors?.Write($"{_argv[0]}: option '{prefix}{option.Name}' doesn't allow an argument\n");
                }

                OptOpt = option.Value;
                return '?';
            }
        }
        else if (option.HasArgument == ArgumentKind.Required)
        {
            if (OptInd < _argv.Length)
            {
                OptArg = _argv[OptInd++];
            }
            else
            {
                if (_printErrors)
                {
                    _errors?.Write($"{_argv[0]}: option '{prefix}{option.Name}' requires an argument\n");
                }

                OptOpt = option.Value;
                return _printErrors ? '?' : ':';
            }
        }

        LongIndex = found;
        return option.Value;
    }

    private static bool IsNonOption(string arg) => arg.Length < 2 || arg[0] != '-';

    /// <summary>
    /// Swaps the block of operands [first_nonopt, last_nonopt) with the block of options [last_nonopt, optind), as
    /// glibc's <c>exchange</c> does, and updates the bounds.
    /// </summary>
    private void Exchange()
    {
        int bottom = _firstNonOption;
        int middle = _lastNonOption;
        int top = OptInd;
        string[] operands = _argv[bottom..middle];
        string[] options = _argv[middle..top];
        options.CopyTo(_argv, bottom);
        operands.CopyTo(_argv, bottom + options.Length);
        _firstNonOption += OptInd - _lastNonOption;
        _lastNonOption = OptInd;
    }
}
