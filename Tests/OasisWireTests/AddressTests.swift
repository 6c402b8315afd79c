import OasisBits
import OasisWire
import Testing

@Suite struct AddressTests {
    @Test func mac() {
        let mac = MACAddress("02:00:00:00:00:01")!
        #expect(mac.description == "02:00:00:00:00:01")
        #expect(mac == MACAddress(2, 0, 0, 0, 0, 1))
        #expect(!mac.isMulticast && mac.isUnicast)
        #expect(MACAddress.broadcast.isMulticast && MACAddress.broadcast.isBroadcast)
        #expect(MACAddress("01:00:5e:00:00:fb")!.isMulticast)
        #expect(MACAddress("02:00:00:00:00") == nil)
        #expect(MACAddress("02:00:00:00:00:01:03") == nil)
        #expect(MACAddress("0g:00:00:00:00:01") == nil)
        #expect(MACAddress("AA-BB-CC-DD-EE-FF")!.description == "aa:bb:cc:dd:ee:ff")
    }

    /// Six groups of one or two hex digits, nothing else: no signs (which Swift's
    /// integer parsing accepts), spaces or empty groups.
    @Test func macTextIsHexDigitsOnly() {
        for bad in [
            "+2:00:00:00:00:01", "02:00:00:00:00:-1", "02:00:00:00:00:+f", " 2:00:00:00:00:01",
            "02::00:00:00:01", "02:00:00:00:00:01:", "0x2:00:00:00:00:01", "02:00:00:00:00:0１",
            "02:00-00:00:00:01", "02-00-00-00-00:01",
        ] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
        #expect(MACAddress("2:0:0:a:B:ff") == MACAddress(2, 0, 0, 0x0a, 0x0b, 0xff))
        #expect(MACAddress("02-00-00-0a-0B-ff") == MACAddress(2, 0, 0, 0x0a, 0x0b, 0xff))
    }

    @Test func ipv4() {
        let a = IPv4Address("192.0.2.1")!
        #expect(a.rawValue == 0xc000_0201)
        #expect(a.description == "192.0.2.1")
        #expect(IPv4Address("256.0.0.1") == nil)
        #expect(IPv4Address("1.2.3") == nil)
        #expect(IPv4Address("01.2.3.4") == nil)
        #expect(IPv4Address("1.2.3.4.") == nil)
        #expect(IPv4Address("224.0.0.1")!.isMulticast)
        #expect(IPv4Address.broadcast.description == "255.255.255.255")
    }

    /// The one parser rejects what `inet_pton` and `nsd-checkzone` reject: leading
    /// zeros (`010` is octal to some readers, decimal to others), signs, spaces,
    /// missing or extra parts, values over 255.
    @Test func ipv4TextIsReadOneWay() {
        for bad in [
            "010.0.0.1", "1.2.3.04", "00.1.2.3", "1.2.3.-4", "1.2.3.+4", " 1.2.3.4", "1.2.3.4 ",
            "1..2.3", "1.2.3.4.5", "", "1.2.3.256", "1.2.3.1000", "0x1.2.3.4", "1,2,3,4",
            "١.٢.٣.٤",
        ] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        for (good, value) in [
            ("0.0.0.0", 0), ("255.255.255.255", 0xffff_ffff), ("10.0.0.1", 0x0a00_0001),
            ("1.20.100.0", 0x0114_6400),
        ] as [(String, UInt32)] {
            #expect(IPv4Address(good)?.rawValue == value, "\(good)")
        }
        let bytes = Array("192.0.2.33".utf8)
        #expect(IPv4Address(bytes: bytes.span) == IPv4Address(192, 0, 2, 33))
        #expect(IPv4Address(Substring("x192.0.2.1").dropFirst()) == hostA)
    }

    @Test func network() {
        let net = IPv4Network("192.0.2.2/24")!
        #expect(net.address == hostB && net.prefixLength == 24)
        #expect(net.netmask.description == "255.255.255.0")
        #expect(net.broadcast.description == "192.0.2.255")
        #expect(net.networkAddress.description == "192.0.2.0")
        #expect(net.contains(IPv4Address("192.0.2.77")!))
        #expect(!net.contains(IPv4Address("192.0.3.1")!))
        #expect(IPv4Network("0.0.0.0/0")!.contains(hostA))
        #expect(IPv4Network("10.0.0.1/32")!.broadcast.description == "10.0.0.1")
        #expect(IPv4Network("10.0.0.1/33") == nil)
        #expect(IPv4Network("10.0.0.1") == nil)
        #expect(IPv4Network("010.0.0.1/8") == nil)
        #expect(IPv4Network("10.0.0.1/08") == nil)
        #expect(IPv4Network("10.0.0.1/00") == nil)
        #expect(IPv4Network("10.0.0.1/0")!.prefixLength == 0)
        #expect(net.description == "192.0.2.2/24")
    }
}

/// The header sizes written out as numbers (so that other modules read them without
/// an addressor call) agree with the layouts' last fields.
@Suite struct LayoutSizeTests {
    @Test func sizesMatchTheLayouts() {
        #expect(EthernetHeader.size == EthernetHeader.etherType.end)
        #expect(VLANTagHeader.size == VLANTagHeader.etherType.end)
        #expect(ArpHeader.size == ArpHeader.targetProtocolAddress.end)
        #expect(IPv4Header.size == IPv4Header.destination.end)
        #expect(ICMPv4Header.size == ICMPv4Header.sequenceNumber.end)
        #expect(UDPHeader.size == UDPHeader.checksum.end)
        #expect(TCPHeader.size == TCPHeader.urgentPointer.end)
        #expect(IPv4Repr.headerLength == IPv4Header.size && ArpRepr.length == ArpHeader.size)
    }
}
