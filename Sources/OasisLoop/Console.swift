// The console: the tutorial's `Console.log`.

import Glibc

/// Lines to the process's standard output, written at once (no buffering), so that
/// what a program prints appears when it happens — `Wake up sleepy!` three seconds
/// after start, not at exit.
public enum Console {
    /// Writes `line` and a newline to standard output in one `write`.
    public static func log(_ line: String) {
        var text = line
        text.append("\n")
        text.withUTF8 { bytes in
            var remaining = UnsafeRawBufferPointer(bytes)
            while !remaining.isEmpty {
                let written = Glibc.write(STDOUT_FILENO, remaining.baseAddress, remaining.count)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // stdout closed: nothing sensible left to do with a log line
                }
                remaining = UnsafeRawBufferPointer(rebasing: remaining[written...])
            }
        }
    }
}
