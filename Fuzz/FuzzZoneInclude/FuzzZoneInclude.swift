// Fuzz target: zone files from a stranger, read from disk as `oasis dns` reads them
// (streamed, a chunk at a time) and including a second one. The input is the main
// file, a NUL byte, then the file `inc.zone` beside it, which the main file may
// `$INCLUDE` (itself too, up to the nesting bound). Every outcome must be an engine or
// a ZoneFileError. A trap is a bug.

import FuzzSupport
import Glibc
import OasisDNS

/// A folder of this process's own for the two files, in memory where there is a
/// tmpfs: rewriting a file on ext4 flushes it at each close, 4 ms an input.
let fuzzFolder: String = {
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    var template = Array("\(base)/oasis-fuzz-include.XXXXXX".utf8CString)
    let folder = template.withUnsafeMutableBufferPointer {
        String(cString: mkdtemp($0.baseAddress!)!)
    }
    // Gone when the process ends (libFuzzer leaves through exit()).
    atexit {
        for name in ["main.zone", "inc.zone"] { unlink(fuzzFolder + "/" + name) }
        rmdir(fuzzFolder)
    }
    return folder
}()

func writeFile(_ path: String, _ bytes: UnsafeBufferPointer<UInt8>) {
    guard let file = fopen(path, "wb") else { return }
    if let base = bytes.baseAddress { fwrite(base, 1, bytes.count, file) }
    fclose(file)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZoneInclude(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let split = input.firstIndex(of: 0) ?? size
    let main = fuzzFolder + "/main.zone"
    writeFile(main, UnsafeBufferPointer(rebasing: input[0..<split]))
    writeFile(
        fuzzFolder + "/inc.zone", UnsafeBufferPointer(rebasing: input[min(split + 1, size)...]))
    let origin = try! DomainName(parsing: "example.")
    var compiler = ZoneCompiler()
    if (try? compiler.add(file: main, origin: origin)) != nil {
        _ = compiler.finish()
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzZoneInclude)
            print("replayed \(count) input(s)")
        }
    }
#endif
