// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Organisation registry of the cross-community safety ledger
/// @notice The chain is the source of truth for who takes part: each organisation's kind, the
/// communities it serves, the address that signs for it, its HPKE public keys (old keys stay readable
/// by index after a rotation) and whether it is suspended. The registry is also the role authority
/// that the other ledger contracts consult.
/// @dev Organisation ids and community codes are short ASCII codes, left-aligned in a bytes32.
/// HPKE public keys are stored as `kemId (uint16, big-endian) || encoded public key` (RFC 9180 §7.1),
/// so a reader knows which KEM a key belongs to.
interface IOrganisationRegistry {
    /// @notice Kinds of organisation. `None` marks an unregistered id.
    enum OrganisationKind {
        None,
        Police,
        Property,
        Committee,
        Auditor,
        Admin
    }

    /// @notice A signer change an admin proposed: it takes effect when the organisation's current
    /// signer accepts it, or once `effectiveAt` has passed (a lost key cannot accept).
    struct PendingSigner {
        address signer;
        uint48 effectiveAt;
    }

    /// @notice An organisation as the registry holds it.
    struct Organisation {
        OrganisationKind kind;
        bool suspended;
        address signer;
        uint32 keyCount;
        bytes32[] communities;
    }

    /// @notice `orgId` is already registered.
    error OrganisationRegistryAlreadyRegistered(bytes32 orgId);
    /// @notice `orgId` is not registered.
    error OrganisationRegistryUnknownOrganisation(bytes32 orgId);
    /// @notice The organisation id is zero or the kind is `None`.
    error OrganisationRegistryInvalidOrganisation(bytes32 orgId);
    /// @notice `signer` is zero or already signs for `heldBy`.
    error OrganisationRegistrySignerUnavailable(address signer, bytes32 heldBy);
    /// @notice The public key is empty, shorter than its KEM id, or longer than 4096 bytes.
    error OrganisationRegistryInvalidPublicKey();
    /// @notice `caller` is not the signer of `orgId`.
    error OrganisationRegistryNotSigner(bytes32 orgId, address caller);
    /// @notice `orgId` is suspended and cannot act.
    error OrganisationRegistrySuspended(bytes32 orgId);
    /// @notice The organisation's suspension is already `suspended`.
    error OrganisationRegistrySuspensionUnchanged(bytes32 orgId, bool suspended);
    /// @notice More than the allowed number of communities (`max`) was given.
    error OrganisationRegistryTooManyCommunities(uint256 length, uint256 max);
    /// @notice There is no `index`-th registered organisation.
    error OrganisationRegistryUnknownIndex(uint256 index);
    /// @notice Key `index` does not exist for `orgId`.
    error OrganisationRegistryUnknownKey(bytes32 orgId, uint256 index);
    /// @notice No signer change is pending for `orgId`.
    error OrganisationRegistryNoPendingSigner(bytes32 orgId);
    /// @notice The pending signer change of `orgId` takes effect only at `effectiveAt` (or on acceptance).
    error OrganisationRegistrySignerChangeNotDue(bytes32 orgId, uint48 effectiveAt);
    /// @notice `caller` may not take this step of the signer change of `orgId`.
    error OrganisationRegistrySignerChangeUnauthorised(bytes32 orgId, address caller);

    /// @notice An organisation was registered with its first public key (index 0).
    event OrganisationRegistered(
        bytes32 indexed orgId, OrganisationKind kind, address signer, bytes32[] communities, bytes publicKey
    );
    /// @notice An organisation was suspended by `by`: it cannot act and its grants stop covering reads.
    event OrganisationSuspended(bytes32 indexed orgId, address by);
    /// @notice A suspended organisation was reinstated by `by`.
    event OrganisationReinstated(bytes32 indexed orgId, address by);
    /// @notice Admin `proposedBy` proposed `newSigner` for the organisation: it takes effect when the
    /// current signer accepts, or at `effectiveAt`, unless cancelled first.
    event OrganisationSignerChangeProposed(
        bytes32 indexed orgId, address currentSigner, address newSigner, uint48 effectiveAt, address proposedBy
    );
    /// @notice The organisation's current signer accepted the pending change (it takes effect at once).
    event OrganisationSignerChangeAccepted(bytes32 indexed orgId, address acceptedBy);
    /// @notice The pending change to `newSigner` was cancelled by `cancelledBy` (an admin or the signer).
    event OrganisationSignerChangeCancelled(bytes32 indexed orgId, address newSigner, address cancelledBy);
    /// @notice The organisation's signer was replaced, by acceptance or after the delay.
    event OrganisationSignerChanged(bytes32 indexed orgId, address previousSigner, address newSigner);
    /// @notice An admin replaced the list of communities the organisation serves.
    event OrganisationCommunitiesChanged(bytes32 indexed orgId, bytes32[] communities);
    /// @notice The organisation's signer published a new public key; earlier keys stay readable.
    event OrganisationKeyRotated(bytes32 indexed orgId, uint256 keyIndex, bytes publicKey);

    /// @notice Register an organisation. Only `ORG_ADMIN_ROLE`.
    function registerOrganisation(
        bytes32 orgId,
        OrganisationKind kind,
        address signer,
        bytes32[] calldata communities,
        bytes calldata key
    ) external;

    /// @notice Suspend an organisation. Only `ORG_ADMIN_ROLE`.
    function suspendOrganisation(bytes32 orgId) external;

    /// @notice Reinstate a suspended organisation. Only `ORG_ADMIN_ROLE`.
    function reinstateOrganisation(bytes32 orgId) external;

    /// @notice Propose `newSigner` for `orgId` (lost key, staff change). Only `ORG_ADMIN_ROLE`. Nothing
    /// changes yet: the organisation's signer accepts it, or anyone completes it after the delay. A
    /// new proposal replaces a pending one.
    /// @return effectiveAt When the change can be completed without the signer's acceptance.
    function proposeSignerChange(bytes32 orgId, address newSigner) external returns (uint48 effectiveAt);

    /// @notice Accept the pending signer change now. Only the organisation's current signer.
    function acceptSignerChange(bytes32 orgId) external;

    /// @notice Carry out the pending signer change once its delay has passed. Only the proposed
    /// signer (which so shows it holds the key) or `ORG_ADMIN_ROLE`.
    function completeSignerChange(bytes32 orgId) external;

    /// @notice Drop the pending signer change. `ORG_ADMIN_ROLE` or the organisation's current signer.
    function cancelSignerChange(bytes32 orgId) external;

    /// @notice The pending signer change of `orgId` (signer zero when none).
    function pendingSigner(bytes32 orgId) external view returns (PendingSigner memory);

    /// @notice Seconds an admin's signer change waits for the organisation's acceptance.
    function signerChangeDelay() external view returns (uint48);

    /// @notice Replace the communities an organisation serves. Only `ORG_ADMIN_ROLE`.
    function setCommunities(bytes32 orgId, bytes32[] calldata communities) external;

    /// @notice Publish a new HPKE public key. Only the organisation's own signer, while not suspended.
    /// @return keyIndex The index under which the key stays readable.
    function rotateKey(bytes32 orgId, bytes calldata key) external returns (uint256 keyIndex);

    /// @notice The organisation `orgId` (reverts when unknown).
    function organisation(bytes32 orgId) external view returns (Organisation memory);

    /// @notice Kind, suspension and signer of `orgId` in one cheap call (kind `None` when unknown).
    function organisationStatus(bytes32 orgId)
        external
        view
        returns (OrganisationKind kind, bool suspended, address signer);

    /// @notice The kind of `orgId` (`None` when unknown).
    function kindOf(bytes32 orgId) external view returns (OrganisationKind);

    /// @notice True when `orgId` is registered and suspended.
    function isSuspended(bytes32 orgId) external view returns (bool);

    /// @notice The signer of `orgId` (zero when unknown).
    function signerOf(bytes32 orgId) external view returns (address);

    /// @notice True when `orgId` is registered and not suspended.
    function isActive(bytes32 orgId) external view returns (bool);

    /// @notice The organisation `signer` signs for, or zero.
    function organisationOfSigner(address signer) external view returns (bytes32);

    /// @notice Public key number `index` of `orgId` (0 is the key it was registered with).
    function publicKey(bytes32 orgId, uint256 index) external view returns (bytes memory);

    /// @notice The newest public key of `orgId` and its index.
    function currentPublicKey(bytes32 orgId) external view returns (uint256 keyIndex, bytes memory key);

    /// @notice Number of organisations ever registered.
    function organisationCount() external view returns (uint256);

    /// @notice The id of the `index`-th registered organisation, in registration order.
    function organisationIdAt(uint256 index) external view returns (bytes32);
}
