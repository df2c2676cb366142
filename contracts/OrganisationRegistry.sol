// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IOrganisationRegistry} from "./interfaces/IOrganisationRegistry.sol";
import {LedgerRoles} from "./libraries/LedgerRoles.sol";

/// @title Organisation registry and role authority
/// @notice See {IOrganisationRegistry}. Roles:
/// - `DEFAULT_ADMIN_ROLE`: one holder, handed over in two steps (begin, then accept by the new admin;
///   OpenZeppelin {AccessControlDefaultAdminRules}); grants and revokes the other roles. On accept,
///   the new admin also takes the previous admin's `ORG_ADMIN_ROLE`.
/// - `ORG_ADMIN_ROLE`: registers, suspends and reinstates organisations, proposes signer changes
///   (effective on the organisation's acceptance or after `signerChangeDelay`), sets communities, and
///   may grant or revoke on an organisation's behalf (recorded as such).
/// - `LOG_WRITER_ROLE`: anchors access-log tree heads (the gateway's log signer).
contract OrganisationRegistry is IOrganisationRegistry, AccessControlDefaultAdminRules {
    /// @notice Role that administers organisations.
    bytes32 public constant ORG_ADMIN_ROLE = LedgerRoles.ORG_ADMIN_ROLE;
    /// @notice Role that anchors access-log tree heads.
    bytes32 public constant LOG_WRITER_ROLE = LedgerRoles.LOG_WRITER_ROLE;

    uint256 private constant _MAX_PUBLIC_KEY_LENGTH = 4096;
    uint256 private constant _MAX_COMMUNITIES = 64;

    mapping(bytes32 orgId => Organisation) private _organisations;
    mapping(bytes32 orgId => mapping(uint256 index => bytes key)) private _publicKeys;
    mapping(address signer => bytes32 orgId) private _organisationOfSigner;
    bytes32[] private _organisationIds;
    mapping(bytes32 orgId => PendingSigner) private _pendingSigners;
    uint48 private immutable _signerChangeDelay;

    /// @param initialAdmin Holder of `DEFAULT_ADMIN_ROLE` and `ORG_ADMIN_ROLE`.
    /// @param adminTransferDelay Seconds a started admin hand-over waits before it can be accepted.
    /// @param signerChangeDelay_ Seconds an admin's signer change waits for the organisation's acceptance.
    constructor(address initialAdmin, uint48 adminTransferDelay, uint48 signerChangeDelay_)
        AccessControlDefaultAdminRules(adminTransferDelay, initialAdmin)
    {
        _signerChangeDelay = signerChangeDelay_;
        _grantRole(ORG_ADMIN_ROLE, initialAdmin);
    }

    /// @inheritdoc IOrganisationRegistry
    function registerOrganisation(
        bytes32 orgId,
        OrganisationKind kind,
        address signer,
        bytes32[] calldata communities,
        bytes calldata key
    ) external onlyRole(ORG_ADMIN_ROLE) {
        if (orgId == bytes32(0) || kind == OrganisationKind.None) revert OrganisationRegistryInvalidOrganisation(orgId);
        _requireCommunitiesFit(communities.length);
        if (_organisations[orgId].kind != OrganisationKind.None) revert OrganisationRegistryAlreadyRegistered(orgId);
        _requireSignerAvailable(signer);
        _requireValidKey(key);

        Organisation storage org = _organisations[orgId];
        org.kind = kind;
        org.signer = signer;
        org.keyCount = 1;
        org.communities = communities;
        _publicKeys[orgId][0] = key;
        _organisationOfSigner[signer] = orgId;
        _organisationIds.push(orgId);
        emit OrganisationRegistered(orgId, kind, signer, communities, key);
    }

    /// @inheritdoc IOrganisationRegistry
    function suspendOrganisation(bytes32 orgId) external onlyRole(ORG_ADMIN_ROLE) {
        Organisation storage org = _existing(orgId);
        if (org.suspended) revert OrganisationRegistrySuspensionUnchanged(orgId, true);
        org.suspended = true;
        emit OrganisationSuspended(orgId, msg.sender);
    }

    /// @inheritdoc IOrganisationRegistry
    function reinstateOrganisation(bytes32 orgId) external onlyRole(ORG_ADMIN_ROLE) {
        Organisation storage org = _existing(orgId);
        if (!org.suspended) revert OrganisationRegistrySuspensionUnchanged(orgId, false);
        org.suspended = false;
        emit OrganisationReinstated(orgId, msg.sender);
    }

    /// @inheritdoc IOrganisationRegistry
    function proposeSignerChange(bytes32 orgId, address newSigner)
        external
        onlyRole(ORG_ADMIN_ROLE)
        returns (uint48 effectiveAt)
    {
        Organisation storage org = _existing(orgId);
        _requireSignerAvailable(newSigner);
        effectiveAt = uint48(block.timestamp) + _signerChangeDelay;
        _pendingSigners[orgId] = PendingSigner({signer: newSigner, effectiveAt: effectiveAt});
        emit OrganisationSignerChangeProposed(orgId, org.signer, newSigner, effectiveAt, msg.sender);
    }

    /// @inheritdoc IOrganisationRegistry
    function acceptSignerChange(bytes32 orgId) external {
        Organisation storage org = _existing(orgId);
        if (msg.sender != org.signer) revert OrganisationRegistrySignerChangeUnauthorised(orgId, msg.sender);
        PendingSigner memory pending = _pending(orgId);
        emit OrganisationSignerChangeAccepted(orgId, msg.sender);
        _replaceSigner(orgId, org, pending.signer);
    }

    /// @inheritdoc IOrganisationRegistry
    function completeSignerChange(bytes32 orgId) external {
        Organisation storage org = _existing(orgId);
        PendingSigner memory pending = _pending(orgId);
        if (msg.sender != pending.signer && !hasRole(ORG_ADMIN_ROLE, msg.sender)) {
            revert OrganisationRegistrySignerChangeUnauthorised(orgId, msg.sender);
        }
        if (block.timestamp < pending.effectiveAt) {
            revert OrganisationRegistrySignerChangeNotDue(orgId, pending.effectiveAt);
        }
        _replaceSigner(orgId, org, pending.signer);
    }

    /// @inheritdoc IOrganisationRegistry
    function cancelSignerChange(bytes32 orgId) external {
        Organisation storage org = _existing(orgId);
        if (msg.sender != org.signer && !hasRole(ORG_ADMIN_ROLE, msg.sender)) {
            revert OrganisationRegistrySignerChangeUnauthorised(orgId, msg.sender);
        }
        PendingSigner memory pending = _pending(orgId);
        delete _pendingSigners[orgId];
        emit OrganisationSignerChangeCancelled(orgId, pending.signer, msg.sender);
    }

    /// @inheritdoc IOrganisationRegistry
    function setCommunities(bytes32 orgId, bytes32[] calldata communities) external onlyRole(ORG_ADMIN_ROLE) {
        Organisation storage org = _existing(orgId);
        _requireCommunitiesFit(communities.length);
        org.communities = communities;
        emit OrganisationCommunitiesChanged(orgId, communities);
    }

    /// @inheritdoc IOrganisationRegistry
    function rotateKey(bytes32 orgId, bytes calldata key) external returns (uint256 keyIndex) {
        Organisation storage org = _existing(orgId);
        if (msg.sender != org.signer) revert OrganisationRegistryNotSigner(orgId, msg.sender);
        if (org.suspended) revert OrganisationRegistrySuspended(orgId);
        _requireValidKey(key);
        keyIndex = org.keyCount;
        _publicKeys[orgId][keyIndex] = key;
        org.keyCount = uint32(keyIndex + 1);
        emit OrganisationKeyRotated(orgId, keyIndex, key);
    }

    /// @inheritdoc IOrganisationRegistry
    function organisation(bytes32 orgId) external view returns (Organisation memory) {
        return _existing(orgId);
    }

    /// @inheritdoc IOrganisationRegistry
    function organisationStatus(bytes32 orgId)
        external
        view
        returns (OrganisationKind kind, bool suspended, address signer)
    {
        Organisation storage org = _organisations[orgId];
        return (org.kind, org.suspended, org.signer);
    }

    /// @inheritdoc IOrganisationRegistry
    function kindOf(bytes32 orgId) external view returns (OrganisationKind) {
        return _organisations[orgId].kind;
    }

    /// @inheritdoc IOrganisationRegistry
    function isSuspended(bytes32 orgId) external view returns (bool) {
        return _organisations[orgId].suspended;
    }

    /// @inheritdoc IOrganisationRegistry
    function signerOf(bytes32 orgId) external view returns (address) {
        return _organisations[orgId].signer;
    }

    /// @inheritdoc IOrganisationRegistry
    function isActive(bytes32 orgId) external view returns (bool) {
        Organisation storage org = _organisations[orgId];
        return org.kind != OrganisationKind.None && !org.suspended;
    }

    /// @inheritdoc IOrganisationRegistry
    function organisationOfSigner(address signer) external view returns (bytes32) {
        return _organisationOfSigner[signer];
    }

    /// @inheritdoc IOrganisationRegistry
    function publicKey(bytes32 orgId, uint256 index) external view returns (bytes memory) {
        if (index >= _existing(orgId).keyCount) revert OrganisationRegistryUnknownKey(orgId, index);
        return _publicKeys[orgId][index];
    }

    /// @inheritdoc IOrganisationRegistry
    function currentPublicKey(bytes32 orgId) external view returns (uint256 keyIndex, bytes memory key) {
        keyIndex = _existing(orgId).keyCount - 1;
        key = _publicKeys[orgId][keyIndex];
    }

    /// @inheritdoc IOrganisationRegistry
    function pendingSigner(bytes32 orgId) external view returns (PendingSigner memory) {
        return _pendingSigners[orgId];
    }

    /// @inheritdoc IOrganisationRegistry
    function signerChangeDelay() external view returns (uint48) {
        return _signerChangeDelay;
    }

    /// @inheritdoc IOrganisationRegistry
    function organisationCount() external view returns (uint256) {
        return _organisationIds.length;
    }

    /// @inheritdoc IOrganisationRegistry
    function organisationIdAt(uint256 index) external view returns (bytes32) {
        if (index >= _organisationIds.length) revert OrganisationRegistryUnknownIndex(index);
        return _organisationIds[index];
    }

    /// @dev The organisation-admin role follows the default-admin role in a hand-over, so the previous
    /// admin keeps no power to register, suspend or grant once the new admin has accepted.
    function _acceptDefaultAdminTransfer() internal override {
        address previous = defaultAdmin();
        super._acceptDefaultAdminTransfer();
        _revokeRole(ORG_ADMIN_ROLE, previous);
        _grantRole(ORG_ADMIN_ROLE, defaultAdmin());
    }

    /// @dev The proposed signer may have been registered for another organisation since the proposal:
    /// availability is checked again when the change takes effect.
    function _replaceSigner(bytes32 orgId, Organisation storage org, address newSigner) private {
        _requireSignerAvailable(newSigner);
        delete _pendingSigners[orgId];
        address previous = org.signer;
        delete _organisationOfSigner[previous];
        _organisationOfSigner[newSigner] = orgId;
        org.signer = newSigner;
        emit OrganisationSignerChanged(orgId, previous, newSigner);
    }

    function _pending(bytes32 orgId) private view returns (PendingSigner memory pending) {
        pending = _pendingSigners[orgId];
        if (pending.signer == address(0)) revert OrganisationRegistryNoPendingSigner(orgId);
    }

    function _existing(bytes32 orgId) private view returns (Organisation storage org) {
        org = _organisations[orgId];
        if (org.kind == OrganisationKind.None) revert OrganisationRegistryUnknownOrganisation(orgId);
    }

    function _requireSignerAvailable(address signer) private view {
        bytes32 heldBy = _organisationOfSigner[signer];
        if (signer == address(0) || heldBy != bytes32(0)) revert OrganisationRegistrySignerUnavailable(signer, heldBy);
    }

    function _requireCommunitiesFit(uint256 length) private pure {
        if (length > _MAX_COMMUNITIES) revert OrganisationRegistryTooManyCommunities(length, _MAX_COMMUNITIES);
    }

    function _requireValidKey(bytes calldata key) private pure {
        // At least the 2-byte KEM id and one byte of key.
        if (key.length < 3 || key.length > _MAX_PUBLIC_KEY_LENGTH) revert OrganisationRegistryInvalidPublicKey();
    }
}
