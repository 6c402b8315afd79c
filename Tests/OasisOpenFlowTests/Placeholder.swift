import Testing

@testable import OasisOpenFlow

@Test func builds() {}
