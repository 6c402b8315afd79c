print("oasis")
