// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IGrantRegistry} from "./interfaces/IGrantRegistry.sol";
import {IOrganisationRegistry} from "./interfaces/IOrganisationRegistry.sol";
import {LedgerRoles} from "./libraries/LedgerRoles.sol";

/// @title Data-access grants
/// @notice See {IGrantRegistry}. Scope sets are kept as mappings so that an access check costs the
/// same whatever the number of grants or the size of a grant's scope.
contract GrantRegistry is IGrantRegistry {
    uint256 private constant _MAX_SCOPE = 64;

    IOrganisationRegistry private immutable _registry;

    mapping(uint256 grantId => Grant) private _grants;
    mapping(uint256 grantId => mapping(bytes32 recordType => bool)) private _scopeRecordTypes;
    mapping(uint256 grantId => mapping(bytes32 community => bool)) private _scopeCommunities;
    uint256 private _grantCount;

    /// @param organisationRegistry The organisation registry, which is also the role authority.
    constructor(IOrganisationRegistry organisationRegistry) {
        _registry = organisationRegistry;
    }

    /// @notice The organisation registry this contract consults.
    function registry() external view returns (IOrganisationRegistry) {
        return _registry;
    }

    /// @inheritdoc IGrantRegistry
    function createGrant(GrantRequest calldata request) external returns (uint256 grantId) {
        bool byAdmin = _authorise(request.ownerOrg);
        _requireActive(request.granteeOrg);
        if (request.ownerOrg == request.granteeOrg) revert GrantRegistrySelfGrant(request.ownerOrg);
        if (request.purpose == Purpose.None) revert GrantRegistryInvalidPurpose();
        if (request.validUntil <= request.validFrom || request.validUntil <= block.timestamp) {
            revert GrantRegistryInvalidValidity(request.validFrom, request.validUntil);
        }
        if (request.recordTypes.length > _MAX_SCOPE) revert GrantRegistryScopeTooLarge(request.recordTypes.length);
        if (request.communities.length > _MAX_SCOPE) revert GrantRegistryScopeTooLarge(request.communities.length);

        grantId = ++_grantCount;
        Grant storage stored = _grants[grantId];
        stored.ownerOrg = request.ownerOrg;
        stored.granteeOrg = request.granteeOrg;
        stored.recordId = request.recordId;
        stored.purpose = request.purpose;
        stored.byAdmin = byAdmin;
        stored.grantedBy = msg.sender;
        stored.validFrom = request.validFrom;
        stored.validUntil = request.validUntil;
        stored.createdBlock = uint64(block.number);
        stored.recordTypes = request.recordTypes;
        stored.communities = request.communities;
        for (uint256 i = 0; i < request.recordTypes.length; ++i) {
            _scopeRecordTypes[grantId][request.recordTypes[i]] = true;
        }
        for (uint256 i = 0; i < request.communities.length; ++i) {
            _scopeCommunities[grantId][request.communities[i]] = true;
        }
        emit GrantCreated(
            grantId,
            request.ownerOrg,
            request.granteeOrg,
            request.purpose,
            request.recordTypes,
            request.communities,
            request.recordId,
            request.validFrom,
            request.validUntil,
            msg.sender,
            byAdmin
        );
    }

    /// @inheritdoc IGrantRegistry
    function revokeGrant(uint256 grantId) external {
        Grant storage stored = _grants[grantId];
        if (stored.createdBlock == 0) revert GrantRegistryUnknownGrant(grantId);
        if (stored.revokedBlock != 0) revert GrantRegistryAlreadyRevoked(grantId, stored.revokedBlock);
        bool byAdmin = _isOrgAdmin(msg.sender);
        if (!byAdmin) {
            // The owner's signer may revoke even while suspended: withdrawing access is always allowed.
            if (msg.sender != _registry.signerOf(stored.ownerOrg)) revert GrantRegistryUnauthorised(stored.ownerOrg, msg.sender);
        }
        stored.revokedBlock = uint64(block.number);
        emit GrantRevoked(grantId, stored.ownerOrg, stored.granteeOrg, msg.sender, byAdmin);
    }

    /// @inheritdoc IGrantRegistry
    function accessDecision(
        uint256 grantId,
        bytes32 granteeOrg,
        bytes32 ownerOrg,
        bytes32 recordId,
        bytes32 recordType,
        bytes32 communityCode,
        Purpose purpose
    ) public view returns (AccessDecision) {
        Grant storage stored = _grants[grantId];
        if (stored.createdBlock == 0) return AccessDecision.UnknownGrant;
        if (stored.granteeOrg != granteeOrg) return AccessDecision.WrongGrantee;
        if (stored.ownerOrg != ownerOrg) return AccessDecision.WrongOwner;
        if (stored.purpose != purpose) return AccessDecision.WrongPurpose;
        if (stored.revokedBlock != 0) return AccessDecision.Revoked;
        if (block.timestamp < stored.validFrom) return AccessDecision.NotYetValid;
        if (block.timestamp >= stored.validUntil) return AccessDecision.Expired;
        if (stored.recordId != bytes32(0) && stored.recordId != recordId) return AccessDecision.OutOfScope;
        if (stored.recordTypes.length != 0 && !_scopeRecordTypes[grantId][recordType]) {
            return AccessDecision.OutOfScope;
        }
        if (stored.communities.length != 0 && !_scopeCommunities[grantId][communityCode]) {
            return AccessDecision.OutOfScope;
        }
        if (_registry.isSuspended(ownerOrg)) return AccessDecision.OwnerSuspended;
        if (_registry.isSuspended(granteeOrg)) return AccessDecision.GranteeSuspended;
        return AccessDecision.Allowed;
    }

    /// @inheritdoc IGrantRegistry
    function isAuthorised(
        uint256 grantId,
        bytes32 granteeOrg,
        bytes32 ownerOrg,
        bytes32 recordId,
        bytes32 recordType,
        bytes32 communityCode,
        Purpose purpose
    ) external view returns (bool) {
        return accessDecision(grantId, granteeOrg, ownerOrg, recordId, recordType, communityCode, purpose)
            == AccessDecision.Allowed;
    }

    /// @inheritdoc IGrantRegistry
    function grant(uint256 grantId) external view returns (Grant memory) {
        Grant storage stored = _grants[grantId];
        if (stored.createdBlock == 0) revert GrantRegistryUnknownGrant(grantId);
        return stored;
    }

    /// @inheritdoc IGrantRegistry
    function grantCount() external view returns (uint256) {
        return _grantCount;
    }

    /// @dev The caller must be the active owner's signer, or an organisation admin (then returns true).
    function _authorise(bytes32 ownerOrg) private view returns (bool byAdmin) {
        (IOrganisationRegistry.OrganisationKind kind, bool suspended, address signer) =
            _registry.organisationStatus(ownerOrg);
        if (kind == IOrganisationRegistry.OrganisationKind.None) revert GrantRegistryUnknownOrganisation(ownerOrg);
        byAdmin = msg.sender != signer;
        if (byAdmin && !_isOrgAdmin(msg.sender)) revert GrantRegistryUnauthorised(ownerOrg, msg.sender);
        if (suspended) revert GrantRegistryOrganisationSuspended(ownerOrg);
    }

    function _requireActive(bytes32 orgId) private view {
        if (_registry.kindOf(orgId) == IOrganisationRegistry.OrganisationKind.None) {
            revert GrantRegistryUnknownOrganisation(orgId);
        }
        if (_registry.isSuspended(orgId)) revert GrantRegistryOrganisationSuspended(orgId);
    }

    function _isOrgAdmin(address account) private view returns (bool) {
        return IAccessControl(address(_registry)).hasRole(LedgerRoles.ORG_ADMIN_ROLE, account);
    }
}
