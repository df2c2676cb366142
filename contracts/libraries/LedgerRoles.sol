// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Role identifiers shared by the ledger contracts
/// @notice Roles are held in the {OrganisationRegistry}, the one role authority the other contracts ask.
library LedgerRoles {
    /// @notice Registers and administers organisations; may grant or revoke on an owner's behalf.
    bytes32 internal constant ORG_ADMIN_ROLE = keccak256("ORG_ADMIN_ROLE");
    /// @notice Anchors access-log tree heads.
    bytes32 internal constant LOG_WRITER_ROLE = keccak256("LOG_WRITER_ROLE");
}
