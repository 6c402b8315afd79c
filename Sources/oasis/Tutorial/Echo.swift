// Read from a dummy input generator, write each input to the console, stop after ten.
//
//     let rec read_line () =
//       OS.Time.sleep (Random.float 1.5) >> return (String.make (Random.int 20) 'a')
//     let rec echo_server = function
//       | 0 -> return ()
//       | n -> lwt s = read_line () in Console.log s; echo_server (n-1)

import OasisLoop

enum Echo {
    /// The tutorial's input: after a random delay of up to 1.5 s, a line of 20 `a`.
    struct DummyInput {
        var generator = SystemRandomNumberGenerator()

        mutating func readLine() async throws -> String {
            let delay = Double.random(in: 0..<1.5, using: &generator)
            try await Time.sleep(.milliseconds(Int(delay * 1000)))
            return String(repeating: "a", count: 20)
        }
    }

    static func main(inputs: Int = 10) async throws {
        var input = DummyInput()
        for _ in 0..<inputs {
            Console.log(try await input.readLine())
        }
    }
}
