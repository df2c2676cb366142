// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Access-log anchors
/// @notice The gateway keeps one append-only RFC 9162 log of every read. Its tree heads (size, root)
/// are anchored here by the log writer. A head must be larger than the last, so the chain holds a
/// growing sequence that auditors check with consistency proofs (RFC 9162 §2.1.4).
interface IAccessLogAnchors {
    /// @notice A tree head as stored, with when it was anchored.
    struct TreeHead {
        bytes32 root;
        uint64 size;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice `caller` does not hold `LOG_WRITER_ROLE`.
    error AccessLogAnchorsUnauthorised(address caller);
    /// @notice The new head's `size` is not larger than the last anchored size.
    error AccessLogAnchorsTreeNotGrown(uint64 lastSize, uint64 size);
    /// @notice The root is zero.
    error AccessLogAnchorsInvalidRoot();
    /// @notice There is no tree head number `index`.
    error AccessLogAnchorsUnknownHead(uint256 index);

    /// @notice A tree head of the access log was anchored as head number `index` (from 0).
    event TreeHeadAnchored(uint256 indexed index, uint64 size, bytes32 root);

    /// @notice Anchor a tree head. Only `LOG_WRITER_ROLE`; `size` must exceed the last anchored size.
    /// @return index The head's index.
    function anchorTreeHead(uint64 size, bytes32 root) external returns (uint256 index);

    /// @notice Number of anchored tree heads.
    function headCount() external view returns (uint256);

    /// @notice Tree head number `index`.
    function headAt(uint256 index) external view returns (TreeHead memory);

    /// @notice The newest tree head (size 0 when none).
    function latestHead() external view returns (TreeHead memory);

    /// @notice True when `leafHash` is entry `leafIndex` of the log under anchored head `headIndex`.
    function isEntryIncluded(
        uint256 headIndex,
        bytes32 leafHash,
        uint256 leafIndex,
        bytes32[] calldata proof
    ) external view returns (bool);
}
