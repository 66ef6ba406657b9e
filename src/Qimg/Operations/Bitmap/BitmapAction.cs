namespace Qimg.Operations.Bitmap;

/// <summary>One change <c>qemu-img bitmap</c> makes to a bitmap (its <c>--add</c>, <c>--remove</c>… options).</summary>
public enum BitmapAction
{
    /// <summary>Add a persistent bitmap (<c>--add</c>, with the request's granularity).</summary>
    Add,

    /// <summary>Remove the bitmap from the image (<c>--remove</c>).</summary>
    Remove,

    /// <summary>Clear every bit (<c>--clear</c>).</summary>
    Clear,

    /// <summary>Let writes set bits (<c>--enable</c>).</summary>
    Enable,

    /// <summary>Stop writes from setting bits (<c>--disable</c>).</summary>
    Disable,

    /// <summary>OR another bitmap into this one (<c>--merge SOURCE</c>, from the image or from the <c>-b</c> file).</summary>
    Merge,
}
