// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Data-access grants between organisations
/// @notice A grant lets a grantee organisation read an owner organisation's records for one purpose,
/// within a scope and a validity window, until revoked. Grants are never edited: a change is a revoke
/// plus a new grant, so the history an auditor needs is the event log plus the block numbers kept in
/// storage (`createdBlock`, `revokedBlock`), and no archive state is required.
/// @dev Validity is `validFrom <= block.timestamp < validUntil` and, for a past block `b`,
/// `createdBlock <= b < revokedBlock` (revokedBlock 0 = never revoked). A grant revoked in the block
/// that created it never covered any read.
interface IGrantRegistry {
    /// @notice Why data is read. A fixed vocabulary, so masking rules and audits can rely on it.
    enum Purpose {
        None,
        EmergencyResponse,
        Investigation,
        FireSafety,
        ElderlyCare,
        CommunityGovernance,
        PropertyManagement,
        Audit
    }

    /// @notice The outcome of an access check; `Allowed` is the only one that permits a read.
    enum AccessDecision {
        Allowed,
        UnknownGrant,
        WrongGrantee,
        WrongOwner,
        WrongPurpose,
        NotYetValid,
        Expired,
        Revoked,
        OutOfScope,
        OwnerSuspended,
        GranteeSuspended
    }

    /// @notice What a grant creator asks for. Empty `recordTypes` or `communities` mean "any";
    /// a non-zero `recordId` narrows the grant to that one record.
    struct GrantRequest {
        bytes32 ownerOrg;
        bytes32 granteeOrg;
        Purpose purpose;
        bytes32[] recordTypes;
        bytes32[] communities;
        bytes32 recordId;
        uint64 validFrom;
        uint64 validUntil;
    }

    /// @notice A grant as stored, with its history.
    struct Grant {
        bytes32 ownerOrg;
        bytes32 granteeOrg;
        bytes32 recordId;
        Purpose purpose;
        bool byAdmin;
        address grantedBy;
        uint64 validFrom;
        uint64 validUntil;
        uint64 createdBlock;
        uint64 revokedBlock;
        bytes32[] recordTypes;
        bytes32[] communities;
    }

    /// @notice Grant `grantId` does not exist.
    error GrantRegistryUnknownGrant(uint256 grantId);
    /// @notice Grant `grantId` was already revoked in `revokedBlock`.
    error GrantRegistryAlreadyRevoked(uint256 grantId, uint64 revokedBlock);
    /// @notice `caller` is neither the owner organisation's signer nor an organisation admin.
    error GrantRegistryUnauthorised(bytes32 ownerOrg, address caller);
    /// @notice `orgId` is not registered.
    error GrantRegistryUnknownOrganisation(bytes32 orgId);
    /// @notice `orgId` is suspended.
    error GrantRegistryOrganisationSuspended(bytes32 orgId);
    /// @notice The validity window is empty or already over.
    error GrantRegistryInvalidValidity(uint64 validFrom, uint64 validUntil);
    /// @notice The purpose is `None`.
    error GrantRegistryInvalidPurpose();
    /// @notice An organisation cannot grant to itself.
    error GrantRegistrySelfGrant(bytes32 orgId);
    /// @notice The scope lists more than 64 record types or communities.
    error GrantRegistryScopeTooLarge(uint256 length);

    /// @notice A grant was created. `byAdmin` is true when an organisation admin acted for the owner.
    event GrantCreated(
        uint256 indexed grantId,
        bytes32 indexed ownerOrg,
        bytes32 indexed granteeOrg,
        Purpose purpose,
        bytes32[] recordTypes,
        bytes32[] communities,
        bytes32 recordId,
        uint64 validFrom,
        uint64 validUntil,
        address grantedBy,
        bool byAdmin
    );
    /// @notice A grant was revoked; reads under it stop at once.
    event GrantRevoked(
        uint256 indexed grantId, bytes32 indexed ownerOrg, bytes32 indexed granteeOrg, address revokedBy, bool byAdmin
    );

    /// @notice Create a grant. Only the owner organisation's signer, or `ORG_ADMIN_ROLE` acting for it.
    /// @return grantId The new grant's id (ids start at 1).
    function createGrant(GrantRequest calldata request) external returns (uint256 grantId);

    /// @notice Revoke a grant. Only the owner organisation's signer, or `ORG_ADMIN_ROLE`.
    function revokeGrant(uint256 grantId) external;

    /// @notice May `granteeOrg` read record `recordId` (of `recordType`, in `communityCode`) owned by
    /// `ownerOrg` for `purpose`, under grant `grantId`, now? Gas does not depend on how many grants exist.
    function accessDecision(
        uint256 grantId,
        bytes32 granteeOrg,
        bytes32 ownerOrg,
        bytes32 recordId,
        bytes32 recordType,
        bytes32 communityCode,
        Purpose purpose
    ) external view returns (AccessDecision);

    /// @notice `accessDecision(...) == Allowed`.
    function isAuthorised(
        uint256 grantId,
        bytes32 granteeOrg,
        bytes32 ownerOrg,
        bytes32 recordId,
        bytes32 recordType,
        bytes32 communityCode,
        Purpose purpose
    ) external view returns (bool);

    /// @notice Grant `grantId` with its history (reverts when unknown).
    function grant(uint256 grantId) external view returns (Grant memory);

    /// @notice Number of grants ever created; ids run from 1 to this number.
    function grantCount() external view returns (uint256);
}
