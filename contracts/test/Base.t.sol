// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";

import {SplitSettlement} from "../src/SplitSettlement.sol";
import {ISplitSettlement} from "../src/interfaces/ISplitSettlement.sol";
import {TestToken} from "./utils/Tokens.sol";
import {Draft, DraftPayment, Leg, Drafts} from "./utils/Draft.sol";
import {Shipped} from "./utils/Shipped.sol";

/// @notice Shared setup: a SplitSettlement proxy owned by this test, one signer, one token, one funder.
abstract contract Base is Test {
    uint256 internal constant SCALE = 1_000_000;
    uint128 internal constant MAX_PAYMENT = 1e30;
    uint128 internal constant DAILY_CAP = 1e36;

    SplitSettlement internal settlement;
    TestToken internal token;

    uint256 internal signerKey = 0xA11CE;
    address internal signer;
    address internal guardian = makeAddr("guardian");
    address internal funder = makeAddr("funder");
    address internal merchant = address(0x1000);
    address internal platform = address(0x2000);
    address internal referrer = address(0x3000);

    function setUp() public virtual {
        vm.warp(1_750_000_000);
        signer = vm.addr(signerKey);
        SplitSettlement impl = Shipped.splitSettlement();
        settlement = SplitSettlement(
            address(
                new ERC1967Proxy(
                    address(impl), abi.encodeCall(SplitSettlement.initialize, (address(this), guardian))
                )
            )
        );
        token = new TestToken("USD");
        settlement.setSigner(signer, true);
        settlement.setTokenConfig(address(token), true, MAX_PAYMENT, DAILY_CAP);
        settlement.setTokenConfig(address(0), true, MAX_PAYMENT, DAILY_CAP);
    }

    // ------------------------------------------------------------ batch building

    function _emptyBatch(address token_, uint256 nonce, address[] memory payees, uint256 paymentCount)
        internal
        view
        returns (Draft memory b)
    {
        b.batchId = keccak256(abi.encode("batch", nonce));
        b.nonce = nonce;
        b.deadline = uint64(block.timestamp + 1 hours);
        b.token = token_;
        b.funder = funder;
        b.funding = 0;
        b.payees = payees;
        b.payments = new DraftPayment[](paymentCount);
    }

    /// @dev One payment of `amount` in the test token split 90% / 7% / 3%, drawn from the deposit.
    function _threeWay(uint256 nonce, uint256 amount) internal view returns (Draft memory b) {
        address[] memory payees = new address[](3);
        payees[0] = merchant;
        payees[1] = platform;
        payees[2] = referrer;
        b = _emptyBatch(address(token), nonce, payees, 1);
        b.payments[0] = _payment(bytes32("p1"), amount, _legs3(0, 900_000, 1, 70_000, 2, 30_000));
    }

    function _leg(uint256 payee, uint256 share) internal pure returns (Leg memory) {
        return Leg({payee: uint16(payee), share: uint32(share)});
    }

    function _payment(bytes32 id, uint256 amount, Leg[] memory legs)
        internal
        pure
        returns (DraftPayment memory)
    {
        return DraftPayment({paymentId: id, amount: uint128(amount), legs: legs});
    }

    function _legs1(uint256 payee) internal pure returns (Leg[] memory legs) {
        legs = new Leg[](1);
        legs[0] = _leg(payee, SCALE);
    }

    function _legs3(uint256 a, uint256 sa, uint256 b, uint256 sb, uint256 c, uint256 sc)
        internal
        pure
        returns (Leg[] memory legs)
    {
        legs = new Leg[](3);
        legs[0] = _leg(a, sa);
        legs[1] = _leg(b, sb);
        legs[2] = _leg(c, sc);
    }

    /// @dev `n` distinct payee addresses in ascending order.
    function _sortedPayees(uint256 n, uint256 salt) internal pure returns (address[] memory payees) {
        payees = new address[](n);
        for (uint256 i; i < n; ++i) {
            payees[i] = address(uint160(uint256(keccak256(abi.encode(salt, i)))));
        }
        _sort(payees);
    }

    function _sort(address[] memory a) internal pure {
        for (uint256 i = 1; i < a.length; ++i) {
            address key = a[i];
            uint256 j = i;
            while (j > 0 && a[j - 1] > key) {
                a[j] = a[j - 1];
                --j;
            }
            a[j] = key;
        }
    }

    /// @dev A batch paying `amount` once to each payee, whole share.
    function _batchOnePerPayee(address token_, uint256 nonce, address[] memory payees, uint256 amount)
        internal
        view
        returns (Draft memory b)
    {
        b = _emptyBatch(token_, nonce, payees, payees.length);
        for (uint256 i; i < payees.length; ++i) {
            b.payments[i] = _payment(keccak256(abi.encode(nonce, i)), amount, _legs1(i));
        }
    }

    function _pack(Draft memory d) internal pure returns (ISplitSettlement.Batch memory) {
        return Drafts.pack(d);
    }

    function _sign(Draft memory b, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, settlement.batchDigest(_pack(b)));
        return abi.encodePacked(r, s, v);
    }

    function _fundDeposit(address token_, uint256 amount) internal {
        if (token_ == address(0)) {
            vm.deal(funder, amount);
            vm.prank(funder);
            settlement.depositNative{value: amount}(funder);
        } else {
            TestToken(token_).mint(funder, amount);
            vm.startPrank(funder);
            TestToken(token_).approve(address(settlement), amount);
            settlement.deposit(token_, funder, amount);
            vm.stopPrank();
        }
    }

    function _total(Draft memory b) internal pure returns (uint256 sum) {
        for (uint256 i; i < b.payments.length; ++i) {
            sum += b.payments[i].amount;
        }
    }
}
