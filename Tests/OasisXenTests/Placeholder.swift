import Testing

@testable import OasisXen

@Test func builds() {}
