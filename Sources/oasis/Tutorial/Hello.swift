// The tutorial's first program: print through the console, nothing else.
//
//     let main () = Console.log "Hello World"

import OasisLoop

enum Hello {
    static func main() async {
        Console.log("Hello World")
    }
}
