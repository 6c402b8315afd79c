// Shared by every fuzz target (Fuzz/<Name>): when built normally (without
// -sanitize=fuzzer), a fuzz target is a replay tool that feeds the files named on
// its command line (or every file in the folders named) to its entry point, so a
// crash found by libFuzzer can be reproduced and debugged with a plain build.

import Glibc

/// The signature of `LLVMFuzzerTestOneInput`.
public typealias FuzzEntry = (UnsafePointer<UInt8>?, Int) -> CInt

/// Replays every input named in `arguments` through `entry`; returns how many ran.
@discardableResult
public func replay(_ arguments: [String], through entry: FuzzEntry) -> Int {
    var count = 0
    for path in arguments {
        if let directory = opendir(path) {
            defer { closedir(directory) }
            while let entry_ = readdir(directory) {
                let name = withUnsafeBytes(of: entry_.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                count += replayFile(path + "/" + name, through: entry) ? 1 : 0
            }
        } else {
            count += replayFile(path, through: entry) ? 1 : 0
        }
    }
    return count
}

private func replayFile(_ path: String, through entry: FuzzEntry) -> Bool {
    guard let file = fopen(path, "rb") else { return false }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let read = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if read == 0 { break }
        bytes.append(contentsOf: chunk[0..<read])
    }
    _ = bytes.withUnsafeBufferPointer { entry($0.baseAddress, $0.count) }
    return true
}
