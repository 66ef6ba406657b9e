namespace Qimg.Formats;

/// <summary>One line of a check's report, in QEMU's words ("ERROR cluster 5 refcount=0 reference=1").</summary>
/// <param name="Text">The line, without its line break.</param>
/// <param name="IsError">
/// QEMU reports this line with <c>error_report</c> (qemu-img prefixes its program name: "qemu-img: ERROR …"); the other
/// lines are printed on stderr as they are.
/// </param>
public readonly record struct CheckMessage(string Text, bool IsError = false);
