"""The errors a user can cause: the CLI turns them into `error: ...` and exit code 2, the server into
a 4xx."""


class UserError(Exception):
    """Bad input from the user: a file, option or spec. The message names it and says what to do."""


class ImageError(UserError):
    """An image that cannot be used. The subclass says why; the HTTP layer maps it to a status code."""


class NotAnImage(ImageError):
    """No known image format (a text file, random bytes)."""


class ImageTooLarge(ImageError):
    """More pixels than any classifier input needs (a decompression bomb, or a photo far too big)."""


class BrokenImage(ImageError):
    """A known format that does not decode: truncated, corrupt, or empty."""
