// Sleep on the loop's clock, twice, then speak.
//
//     lwt () = OS.Time.sleep 1.0 in
//     lwt () = OS.Time.sleep 2.0 in
//     Console.log "Wake up sleepy!"

import OasisLoop

enum Sleep {
    static func main() async throws {
        try await Time.sleep(.seconds(1))
        try await Time.sleep(.seconds(2))
        Console.log("Wake up sleepy!")
    }
}
