// Two threads of control on one loop: both sleep at once, so the whole takes about
// two seconds, not three.
//
//     lwt () = join [
//       (OS.Time.sleep 1.0 >> (Console.log "Heads"; return ()));
//       (OS.Time.sleep 2.0 >> (Console.log "Tails"; return ()));
//     ] in
//     Console.log "Finished"

import OasisLoop

enum HeadsOrTails {
    static func main() async throws {
        async let heads: Void = {
            try await Time.sleep(.seconds(1))
            Console.log("Heads")
        }()
        async let tails: Void = {
            try await Time.sleep(.seconds(2))
            Console.log("Tails")
        }()
        _ = try await heads
        _ = try await tails
        Console.log("Finished")
    }
}
